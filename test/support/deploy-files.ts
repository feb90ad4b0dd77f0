/** The queries in what ships in deploy/: the Grafana dashboard's and the alert rules'. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';

const ROOT = join(import.meta.dirname, '../..');

interface Panel { title?: string; type: string; targets?: { expr: string }[]; panels?: Panel[] }

/** Every query of the dashboard with where it is, the templating included. */
export function dashboardQueries(): { where: string; expr: string }[] {
  const dash = JSON.parse(readFileSync(join(ROOT, 'deploy/grafana/sandbar.json'), 'utf8')) as { panels: Panel[]; templating: { list: { name: string; query?: string | { query: string } }[] } };
  const out: { where: string; expr: string }[] = [];
  const walk = (panels: Panel[]) => {
    for (const p of panels) {
      for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}"`, expr: t.expr });
      walk(p.panels ?? []);
    }
  };
  walk(dash.panels);
  for (const v of dash.templating.list) {
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    const m = q ? /^label_values\((\w+),\s*\w+\)$/.exec(q) : null;
    if (m) out.push({ where: `variable ${v.name}`, expr: m[1]! });
  }
  return out;
}

export function ruleQueries(): { where: string; expr: string }[] {
  const doc = parseYaml(readFileSync(join(ROOT, 'deploy/prometheus/sandbar.rules.yml'), 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] };
  return doc.groups.flatMap((g) => g.rules.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr })));
}

