/**
 * Dependencies point one way (STYLE.md): protocols <- cluster <- root / leaf / agent,
 * and the user-facing clients reach the cluster only through its API module.
 * This test reads every import in the tree and fails on a forbidden edge or a cycle.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const sourceDirs = ['protocols', 'cluster', 'agent', 'root', 'leaf', 'cli', 'web', 'bench'];

/** Which top-level areas each area must never import. */
const forbidden: Array<{ from: RegExp; to: RegExp; why: string }> = [
  { from: /^protocols\//, to: /^(cluster|agent|root|leaf|cli|web)\//, why: 'protocols hold wire formats only' },
  { from: /^cluster\//, to: /^(agent|root|leaf|cli|web)\//, why: 'the cluster core knows nothing of its users' },
  { from: /^agent\//, to: /^cluster\/(auth|proxy)\//, why: 'the agent talks to the cluster only through its API client and the tunnel' },
  { from: /^cli\/(psh|pctl|pbot)\//, to: /^cluster\/(auth|proxy)\//, why: 'clients use the API module, not cluster internals' },
  { from: /^web\//, to: /^cluster\/(auth|proxy)\//, why: 'the web UI uses the API module' },
];

function walk(dir: string, out: string[] = []): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of entries) {
    if (name === 'node_modules' || name === 'gen' || name === 'dist') continue;
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) walk(full, out);
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(full);
  }
  return out;
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+['"]([^'"]+)['"]/g), ...text.matchAll(/import\(\s*['"]([^'"]+)['"]\s*\)/g)];
  return specs
    .map((m) => m[1] ?? '')
    .filter((s) => s.startsWith('.'))
    .map((s) => path.relative(root, path.resolve(path.dirname(file), s)));
}

const files = sourceDirs.flatMap((d) => walk(path.join(root, d))).filter((f) => !f.endsWith('.test.ts'));
const graph = new Map(files.map((f) => [path.relative(root, f), importsOf(f)]));

test('no forbidden imports between areas', () => {
  const violations: string[] = [];
  for (const [from, targets] of graph) {
    for (const to of targets) {
      for (const rule of forbidden) {
        if (rule.from.test(from) && rule.to.test(to)) violations.push(`${from} imports ${to}: ${rule.why}`);
      }
    }
  }
  assert.deepEqual(violations, []);
});

test('no import cycles', () => {
  const state = new Map<string, 'visiting' | 'done'>();
  const cycles: string[] = [];
  const visit = (node: string, trail: string[]): void => {
    if (state.get(node) === 'done') return;
    if (state.get(node) === 'visiting') {
      cycles.push([...trail.slice(trail.indexOf(node)), node].join(' -> '));
      return;
    }
    state.set(node, 'visiting');
    for (const next of graph.get(node) ?? []) if (graph.has(next)) visit(next, [...trail, node]);
    state.set(node, 'done');
  };
  for (const node of graph.keys()) visit(node, []);
  assert.deepEqual(cycles, []);
});

test('the rules see the tree (guards against a walker that finds nothing)', () => {
  assert.ok(graph.size > 10, `only ${graph.size} source files found under ${sourceDirs.join(', ')}`);
});
