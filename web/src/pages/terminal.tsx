/**
 * A node's terminal: xterm.js over a websocket to the proxy, which logs in to the
 * node's SSH service with the session's certificate. Binary frames carry terminal
 * bytes both ways; text frames carry JSON control messages (resize from here;
 * status, error and exit from the proxy). Copy: select text (Ctrl+Shift+C or the
 * button); paste: Ctrl+Shift+V, the browser's paste, or the button.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import '@xterm/xterm/css/xterm.css';
import { api } from '../api.ts';
import { Link } from '../components/link.tsx';
import { useLocation } from '../router.ts';

type Status = { state: 'connecting' | 'open' | 'closed' | 'error'; message: string };

export function TerminalPage(props: { cluster: string; node: string }) {
  const { query } = useLocation();
  const login = query.get('login') ?? '';
  // The path names the host id (unique); the query carries the node name for people.
  const name = query.get('name') || props.node;
  const host = useRef<HTMLDivElement>(null);
  const terminal = useRef<Terminal>();
  const [status, setStatus] = useState<Status>({ state: 'connecting', message: `connecting to ${name} as ${login}…` });

  useEffect(() => {
    const term = new Terminal({ cursorBlink: true, convertEol: false, fontSize: 14, scrollback: 5000 });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(host.current!);
    fit.fit();
    terminal.current = term;
    const socket = new WebSocket(api.terminalUrl(props.cluster, props.node, login, { cols: term.cols, rows: term.rows }));
    socket.binaryType = 'arraybuffer';
    const encoder = new TextEncoder();
    socket.onopen = () => setStatus({ state: 'connecting', message: 'logging in…' });
    socket.onmessage = (event: MessageEvent) => {
      if (typeof event.data !== 'string') {
        term.write(new Uint8Array(event.data as ArrayBuffer));
        return;
      }
      const control = _control(event.data);
      if (control.type === 'ready') {
        setStatus({ state: 'open', message: `connected to ${name} as ${login}` });
        term.focus();
      } else if (control.type === 'error') setStatus({ state: 'error', message: control.message ?? 'the proxy refused the session' });
      else if (control.type === 'exit') setStatus({ state: 'closed', message: `session ended${control.code !== undefined ? ` (exit status ${control.code})` : ''}` });
    };
    socket.onclose = (event) => setStatus((s) => (s.state === 'error' || s.state === 'closed' ? s : { state: event.code === 1000 ? 'closed' : 'error', message: event.reason || 'the connection closed' }));
    const input = term.onData((data) => socket.readyState === WebSocket.OPEN && socket.send(encoder.encode(data)));
    const binary = term.onBinary((data) => socket.readyState === WebSocket.OPEN && socket.send(Uint8Array.from(data, (c) => c.charCodeAt(0))));
    const resize = term.onResize(({ cols, rows }) => socket.readyState === WebSocket.OPEN && socket.send(JSON.stringify({ type: 'resize', cols, rows })));
    term.attachCustomKeyEventHandler((event) => {
      if (event.type === 'keydown' && event.ctrlKey && event.shiftKey && event.code === 'KeyC') {
        void navigator.clipboard?.writeText(term.getSelection());
        return false;
      }
      return true;
    });
    const observer = new ResizeObserver(() => fit.fit());
    observer.observe(host.current!);
    return () => {
      observer.disconnect();
      input.dispose();
      binary.dispose();
      resize.dispose();
      socket.close(1000, 'left the page');
      term.dispose();
    };
  }, [props.cluster, props.node, login, name]);

  const copy = (): void => void navigator.clipboard?.writeText(terminal.current?.getSelection() ?? '');
  const paste = async (): Promise<void> => {
    const text = await navigator.clipboard?.readText().catch(() => '');
    if (text) terminal.current?.paste(text);
    terminal.current?.focus();
  };

  return (
    <section class="terminal-page" aria-labelledby="terminal-title">
      <div class="terminal-bar">
        <h1 id="terminal-title">{login}@{name}</h1>
        <p role="status" class={`status ${status.state}`} data-state={status.state}>{status.message}</p>
        <button type="button" onClick={copy}>Copy selection</button>
        <button type="button" onClick={() => void paste()}>Paste</button>
        <Link href={`/clusters/${encodeURIComponent(props.cluster)}/resources`}>Back to resources</Link>
      </div>
      <div class="terminal" ref={host} role="application" aria-label={`terminal of ${name}`} />
    </section>
  );
}

function _control(text: string): { type: string; message?: string; code?: number } {
  try {
    const value = JSON.parse(text) as { type?: unknown; message?: unknown; code?: unknown };
    return { type: String(value.type ?? ''), message: typeof value.message === 'string' ? value.message : undefined, code: typeof value.code === 'number' ? value.code : undefined };
  } catch {
    return { type: 'unknown' };
  }
}
