/** Labels as small chips; clicking one adds it to the filter. */
export function Labels(props: { labels?: Record<string, string>; onPick?: (label: string) => void }) {
  const entries = Object.entries(props.labels ?? {});
  if (entries.length === 0) return <span class="muted">none</span>;
  return (
    <ul class="labels">
      {entries.map(([key, value]) => (
        <li key={key}>
          {props.onPick
            ? <button type="button" class="chip" title={`filter by ${key}=${value}`} onClick={() => props.onPick?.(`${key}=${value}`)}>{key}={value}</button>
            : <span class="chip">{key}={value}</span>}
        </li>
      ))}
    </ul>
  );
}
