/**
 * Replays one recording at its own pace: SSH sessions (asciicast v2) in xterm.js fed
 * with the timed output, desktop sessions (PSTDREC1) on a canvas with the live
 * viewer's decoder. Pauses longer than `idleLimitMs` are shortened, the speed can be
 * raised, and "Skip to end" draws everything at once.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { Terminal } from '@xterm/xterm';
import '@xterm/xterm/css/xterm.css';
import { api } from '../api.ts';
import { ErrorBanner } from '../components/error-banner.tsx';
import { Link } from '../components/link.tsx';
import { drawRect, readDesktopRecording } from '../desktop-stream.ts';
import { useLocation } from '../router.ts';

/** Longest pause replayed as is. */
const idleLimitMs = 2_000;

interface Step {
  atMs: number;
  run(): void | Promise<void>;
}

type State = 'loading' | 'playing' | 'done' | 'error';

export function RecordingPlayerPage(props: { cluster: string; sessionId: string }) {
  const { query } = useLocation();
  const screen = useRef<HTMLDivElement>(null);
  const [state, setState] = useState<State>('loading');
  const [error, setError] = useState<unknown>();
  const [speed, setSpeed] = useState(1);
  const [kind, setKind] = useState(query.get('kind') ?? '');
  const [run, setRun] = useState(0);
  const skip = useRef(false);

  useEffect(() => {
    let live = true;
    let cleanup = (): void => {};
    skip.current = false;
    setState('loading');
    api.recording(props.cluster, props.sessionId).then(
      async (bytes) => {
        if (!live) return;
        const desktop = new TextDecoder().decode(bytes.subarray(0, 8)) === 'PSTDREC1';
        setKind(desktop ? 'desktop' : 'terminal');
        const built = desktop ? _desktopSteps(screen.current!, bytes) : _terminalSteps(screen.current!, bytes);
        cleanup = built.dispose;
        setState('playing');
        await _play(built.steps, { speed, skip: () => skip.current, live: () => live });
        if (live) setState('done');
      },
      (e: unknown) => {
        if (!live) return;
        setError(e);
        setState('error');
      },
    ).catch((e: unknown) => {
      if (!live) return;
      setError(e);
      setState('error');
    });
    return () => {
      live = false;
      cleanup();
    };
  }, [props.cluster, props.sessionId, run, speed]);

  return (
    <section class="recording-page" aria-labelledby="recording-title">
      <div class="terminal-bar">
        <h1 id="recording-title">Recording {props.sessionId.slice(0, 8)}{kind ? ` (${kind})` : ''}</h1>
        <p role="status" class={`status ${state}`} data-state={state}>{_say(state)}</p>
        <label>Speed
          <select value={String(speed)} onChange={(e) => setSpeed(Number((e.target as HTMLSelectElement).value))}>
            {[1, 2, 4, 16].map((s) => <option key={s} value={String(s)}>{s}×</option>)}
          </select>
        </label>
        <button type="button" onClick={() => (skip.current = true)} disabled={state !== 'playing'}>Skip to end</button>
        <button type="button" onClick={() => setRun((n) => n + 1)}>Replay</button>
        <Link href={`/clusters/${encodeURIComponent(props.cluster)}/recordings`}>Back to recordings</Link>
      </div>
      <ErrorBanner error={error} />
      <div class={kind === 'desktop' ? 'desktop' : 'terminal'} ref={screen} role="img" aria-label={`replay of session ${props.sessionId}`} />
    </section>
  );
}

function _say(state: State): string {
  return { loading: 'loading the recording…', playing: 'playing', done: 'replay finished', error: 'cannot play this recording' }[state];
}

/** Runs the steps at their times (pauses capped, divided by speed); all at once after a skip. */
async function _play(steps: Step[], o: { speed: number; skip: () => boolean; live: () => boolean }): Promise<void> {
  let previous = 0;
  for (const step of steps) {
    if (!o.live()) return;
    const pause = Math.min(Math.max(0, step.atMs - previous), idleLimitMs) / o.speed;
    previous = step.atMs;
    if (pause > 1 && !o.skip()) await new Promise((resolve) => setTimeout(resolve, pause));
    await step.run();
  }
}

/** asciicast v2: a header line, then [seconds, "o" | "r", data] lines. */
function _terminalSteps(host: HTMLDivElement, bytes: Uint8Array): { steps: Step[]; dispose(): void } {
  const lines = new TextDecoder().decode(bytes).split('\n').filter((l) => l.trim() !== '');
  const header = JSON.parse(lines[0] ?? '{}') as { version?: number; width?: number; height?: number };
  if (header.version !== 2) throw new Error('this recording is not asciicast v2');
  host.replaceChildren();
  const term = new Terminal({ cols: header.width ?? 80, rows: header.height ?? 24, disableStdin: true, convertEol: false, fontSize: 14, scrollback: 5000 });
  term.open(host);
  const steps: Step[] = [];
  for (const line of lines.slice(1)) {
    const [time, type, data] = JSON.parse(line) as [number, string, string];
    if (type === 'o') steps.push({ atMs: time * 1000, run: () => new Promise<void>((resolve) => term.write(data, resolve)) });
    else if (type === 'r') {
      const [cols, rows] = data.split('x').map(Number);
      if (cols && rows) steps.push({ atMs: time * 1000, run: () => term.resize(cols, rows) });
    }
  }
  return { steps, dispose: () => term.dispose() };
}

/** PSTDREC1: the frames the viewer got, drawn on a canvas as the live page draws them. */
function _desktopSteps(host: HTMLDivElement, bytes: Uint8Array): { steps: Step[]; dispose(): void } {
  const records = readDesktopRecording(bytes);
  host.replaceChildren();
  const canvas = document.createElement('canvas');
  canvas.setAttribute('aria-label', 'desktop replay');
  host.append(canvas);
  const context = canvas.getContext('2d')!;
  const steps: Step[] = [];
  for (const { timeMs, frame } of records) {
    if (frame.kind === 'rect') {
      const rect = frame.rect;
      steps.push({ atMs: timeMs, run: () => drawRect(context, rect) });
      continue;
    }
    const message = frame.message;
    if (message.type === 'recording' || message.type === 'ready' || message.type === 'resize') {
      const width = Number(message.width);
      const height = Number(message.height);
      if (width > 0 && height > 0) steps.push({ atMs: timeMs, run: () => void ((canvas.width = width), (canvas.height = height)) });
    }
  }
  return { steps, dispose: () => canvas.remove() };
}
