import { api } from '../api.ts';
import { useAsync } from '../use-async.ts';

/** The clusters the person may reach: this one and the leaves their roles reach (GET /v1/webapi/clusters). */
export function ClusterPicker(props: { current: string; onPick: (cluster: string) => void }) {
  const clusters = useAsync(() => api.clusters(), []);
  const names = clusters.value?.clusters.map((c) => c.name) ?? [props.current];
  if (!names.includes(props.current)) names.unshift(props.current);
  return (
    <label class="picker">
      <span>Cluster</span>
      <select value={props.current} onChange={(e) => props.onPick((e.target as HTMLSelectElement).value)}>
        {names.map((name) => <option key={name} value={name}>{name}</option>)}
      </select>
    </label>
  );
}
