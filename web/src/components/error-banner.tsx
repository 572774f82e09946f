import { ApiError } from '../api.ts';

/** Shows a refusal or failure as an alert that screen readers announce. */
export function ErrorBanner(props: { error: unknown }) {
  if (!props.error) return null;
  const error = props.error;
  const code = error instanceof ApiError ? error.code : '';
  const message = error instanceof Error ? error.message : String(error);
  return (
    <div class="error" role="alert">
      {code ? <strong>{code}: </strong> : null}
      {message}
    </div>
  );
}
