/**
 * A remote desktop in a canvas: the desktop stream over a websocket to the proxy,
 * which carries it to the agent's desktop service (docs/desktops.md). Rects are drawn
 * in arrival order (PNG ones decoded by the browser); mouse, wheel and keys (as
 * scancodes, while the canvas has focus) and clipboard text go back.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api.ts';
import { Link } from '../components/link.tsx';
import { DesktopStreamDecoder, drawRect, encodeControl, scancodes, type Control } from '../desktop-stream.ts';
import { useLocation } from '../router.ts';

type Status = { state: 'connecting' | 'open' | 'closed' | 'error'; message: string };

export function DesktopPage(props: { cluster: string; name: string }) {
  const { query } = useLocation();
  const login = query.get('login') ?? '';
  const canvas = useRef<HTMLCanvasElement>(null);
  const socket = useRef<WebSocket>();
  const [status, setStatus] = useState<Status>({ state: 'connecting', message: `connecting to ${props.name} as ${login}…` });
  const [clipboard, setClipboard] = useState('');

  useEffect(() => {
    const ws = new WebSocket(api.desktopUrl(props.cluster, props.name));
    ws.binaryType = 'arraybuffer';
    socket.current = ws;
    const decoder = new DesktopStreamDecoder();
    const context = canvas.current!.getContext('2d')!;
    let drawing: Promise<void> = Promise.resolve();
    const send = (message: Control): void => {
      if (ws.readyState === WebSocket.OPEN) ws.send(encodeControl(message));
    };
    const size = { width: Math.max(200, Math.min(1920, Math.floor(canvas.current!.parentElement!.clientWidth))), height: 768 };
    // 4:3, within the window so the whole desktop shows without scrolling.
    size.height = Math.max(200, Math.min(1200, window.innerHeight - 200, Math.round(size.width * 0.75)));
    ws.onopen = () => send({ type: 'connect', login, width: size.width, height: size.height });
    ws.onmessage = (event: MessageEvent) => {
      if (typeof event.data === 'string') return;
      let frames;
      try {
        frames = decoder.push(new Uint8Array(event.data as ArrayBuffer));
      } catch (error) {
        setStatus({ state: 'error', message: (error as Error).message });
        ws.close();
        return;
      }
      for (const frame of frames) {
        if (frame.kind === 'rect') {
          const rect = frame.rect;
          drawing = drawing.then(() => drawRect(context, rect));
          continue;
        }
        const message = frame.message;
        if (message.type === 'ready' || message.type === 'resize') {
          const width = Number(message.width);
          const height = Number(message.height);
          drawing = drawing.then(() => {
            canvas.current!.width = width;
            canvas.current!.height = height;
          });
          if (message.type === 'ready') setStatus({ state: 'open', message: `connected to ${props.name} as ${login}` });
        } else if (message.type === 'clipboard' && typeof message.text === 'string') setClipboard(message.text);
        else if (message.type === 'error') setStatus({ state: 'error', message: String(message.message ?? message.code ?? 'the desktop refused the session') });
        else if (message.type === 'end') setStatus({ state: 'closed', message: `session ended${message.reason ? `: ${String(message.reason)}` : ''}` });
      }
    };
    ws.onclose = () => setStatus((s) => (s.state === 'error' || s.state === 'closed' ? s : { state: 'closed', message: 'the connection closed' }));

    const element = canvas.current!;
    const point = (event: MouseEvent) => {
      const box = element.getBoundingClientRect();
      return {
        x: Math.max(0, Math.min(element.width - 1, Math.round(((event.clientX - box.left) * element.width) / box.width))),
        y: Math.max(0, Math.min(element.height - 1, Math.round(((event.clientY - box.top) * element.height) / box.height))),
      };
    };
    const buttons: Record<number, number> = { 0: 0, 1: 1, 2: 2, 3: 3, 4: 4 };
    const onMove = (event: MouseEvent): void => send({ type: 'mouse_move', ...point(event) });
    const onButton = (down: boolean) => (event: MouseEvent): void => {
      event.preventDefault();
      if (down) element.focus();
      send({ type: 'mouse_move', ...point(event) });
      if (buttons[event.button] !== undefined) send({ type: 'mouse_button', button: buttons[event.button], down });
    };
    const onWheel = (event: WheelEvent): void => {
      event.preventDefault();
      const horizontal = Math.abs(event.deltaX) > Math.abs(event.deltaY);
      const delta = Math.max(-10_000, Math.min(10_000, Math.round(-(horizontal ? event.deltaX : event.deltaY))));
      if (delta !== 0) send({ type: 'wheel', delta, horizontal });
    };
    const onKey = (down: boolean) => (event: KeyboardEvent): void => {
      const scancode = scancodes[event.code];
      if (scancode === undefined) return;
      event.preventDefault();
      send({ type: 'key', scancode, down });
    };
    const onDown = onButton(true);
    const onUp = onButton(false);
    const onKeyDown = onKey(true);
    const onKeyUp = onKey(false);
    const noMenu = (event: Event): void => event.preventDefault();
    element.addEventListener('mousemove', onMove);
    element.addEventListener('mousedown', onDown);
    element.addEventListener('mouseup', onUp);
    element.addEventListener('wheel', onWheel, { passive: false });
    element.addEventListener('keydown', onKeyDown);
    element.addEventListener('keyup', onKeyUp);
    element.addEventListener('contextmenu', noMenu);
    return () => {
      element.removeEventListener('mousemove', onMove);
      element.removeEventListener('mousedown', onDown);
      element.removeEventListener('mouseup', onUp);
      element.removeEventListener('wheel', onWheel);
      element.removeEventListener('keydown', onKeyDown);
      element.removeEventListener('keyup', onKeyUp);
      element.removeEventListener('contextmenu', noMenu);
      if (ws.readyState === WebSocket.OPEN) ws.send(encodeControl({ type: 'close' }));
      ws.close(1000, 'left the page');
    };
  }, [props.cluster, props.name, login]);

  const sendClipboard = (): void => {
    if (socket.current?.readyState === WebSocket.OPEN) socket.current.send(encodeControl({ type: 'clipboard', text: clipboard }));
  };

  return (
    <section class="desktop-page" aria-labelledby="desktop-title">
      <div class="terminal-bar">
        <h1 id="desktop-title">{login}@{props.name}</h1>
        <p role="status" class={`status ${status.state}`} data-state={status.state}>{status.message}</p>
        <Link href={`/clusters/${encodeURIComponent(props.cluster)}/resources`}>Back to resources</Link>
      </div>
      <div class="desktop">
        <canvas ref={canvas} width={1} height={1} tabIndex={0} aria-label={`desktop ${props.name}: click to focus, then keys go to the desktop`} />
      </div>
      <div class="clipboard">
        <label for="desktop-clipboard">Clipboard text</label>
        <textarea id="desktop-clipboard" rows={2} value={clipboard} onInput={(e) => setClipboard((e.target as HTMLTextAreaElement).value)} />
        <button type="button" onClick={sendClipboard}>Send to desktop</button>
      </div>
    </section>
  );
}
