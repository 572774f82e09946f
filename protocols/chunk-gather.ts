/**
 * A byte stream's chunks held until the frame they start is complete, then joined once:
 * joining at every chunk copies a large frame that arrives in many chunks over and over.
 * Chunks are kept, not copied, so the caller must not reuse them (socket chunks are fresh).
 */
export class ChunkGather {
  #chunks: Buffer[] = [];
  #bytes = 0;
  /** How many bytes the frame at the start needs; nothing is handed out before. */
  need: number;

  constructor(need = 0) {
    this.need = need;
  }

  /** Adds `chunk`; once `need` bytes are held, returns them all joined (and holds none). */
  take(chunk: Buffer): Buffer | undefined {
    this.#chunks.push(chunk);
    this.#bytes += chunk.length;
    if (this.#bytes < this.need) return undefined;
    const all = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#bytes);
    this.clear();
    return all;
  }

  /** Holds `rest`, the start of a frame not complete yet, for the next chunks. */
  keep(rest: Buffer): void {
    this.#chunks = rest.length > 0 ? [rest] : [];
    this.#bytes = rest.length;
  }

  clear(): void {
    this.#chunks = [];
    this.#bytes = 0;
  }
}
