import assert from 'node:assert/strict';
import { it } from 'node:test';
import { ChunkGather } from './chunk-gather.ts';

it('holds chunks until `need` bytes are there, then hands them out joined once', () => {
  const gather = new ChunkGather(5);
  assert.equal(gather.take(Buffer.from('ab')), undefined);
  assert.equal(gather.take(Buffer.from('cd')), undefined);
  assert.equal(String(gather.take(Buffer.from('efg'))), 'abcdefg');
  // Nothing is held after a take: the next need starts from scratch.
  gather.need = 2;
  assert.equal(gather.take(Buffer.from('h')), undefined);
  assert.equal(String(gather.take(Buffer.from('i'))), 'hi');
});

it('a single chunk that is enough comes back as it is, not copied', () => {
  const gather = new ChunkGather(3);
  const chunk = Buffer.from('whole');
  assert.equal(gather.take(chunk), chunk);
});

it('keeps the rest of an incomplete frame in front of the next chunks; clear drops it', () => {
  const gather = new ChunkGather();
  gather.keep(Buffer.from('par'));
  gather.need = 6;
  assert.equal(String(gather.take(Buffer.from('tial'))), 'partial');
  gather.keep(Buffer.from('old'));
  gather.clear();
  gather.need = 1;
  assert.equal(String(gather.take(Buffer.from('new'))), 'new');
});
