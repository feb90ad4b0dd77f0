/**
 * Just enough PromQL reading for the tests of what ships in deploy/: the
 * metric selectors an expression names (`name{label="v", ...}`), so a test
 * can check that every query of the dashboard and every alert rule names a
 * series Sandbar exports, with labels it has.
 */

export interface Selector {
  readonly name: string;
  /** Label names the selector matches on. */
  readonly labels: readonly string[];
}

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan']);

export function metricSelectors(expr: string): Selector[] {
  // Grafana's variables, then string literals (label values can hold anything).
  let e = expr.replace(/\$\{?[A-Za-z_]+\}?/g, 'X').replace(/"(?:[^"\\]|\\.)*"/g, '""');
  // Label lists of grouping modifiers are label names, not metrics.
  e = e.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  // Range and subquery durations.
  e = e.replace(/\[[^\]]*\]/g, ' ');
  const out: Selector[] = [];
  const re = /(?<![0-9.A-Za-z_:])([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{[^}]*\})?\s*(\()?|\{[^}]*\}/g;
  for (let m; (m = re.exec(e)); ) {
    const [, name, braces, call] = m;
    if (name === undefined || call !== undefined || KEYWORDS.has(name.toLowerCase())) continue;
    // "X" stands for a Grafana variable (replaced above).
    if (name === 'X') continue;
    const labels = [...(braces ?? '').matchAll(/([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map((l) => l[1]!);
    out.push({ name, labels });
  }
  return out;
}
