import { expect } from 'chai';
import fc from 'fast-check';
import { histogramFamily, mergeFamilies, renderText, withLabels, formatValue, type Family } from '../../../src/observability/exposition.js';
import { Histogram } from '../../../src/observability/histogram.js';

/** A small reader of the text format, enough to check what renderText writes. */
function parse(text: string): { meta: Map<string, { help: string; type: string }>; samples: { name: string; labels: Record<string, string>; value: string }[] } {
  const meta = new Map<string, { help: string; type: string }>();
  const samples: { name: string; labels: Record<string, string>; value: string }[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m = /^# HELP (\S+) (.*)$/.exec(line);
    if (m) { meta.set(m[1]!, { help: m[2]!, type: meta.get(m[1]!)?.type ?? '' }); continue; }
    m = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (m) { meta.set(m[1]!, { help: meta.get(m[1]!)?.help ?? '', type: m[2]! }); continue; }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable line ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name: m[1]!, labels, value: m[3]! });
  }
  return { meta, samples };
}

describe('observability: Prometheus text exposition', () => {
  it('writes HELP and TYPE once per family, then its samples with their labels', () => {
    const text = renderText([
      { name: 'sandbar_sessions', help: 'Open sessions.', type: 'gauge', samples: [{ labels: { worker: '0' }, value: 3 }, { labels: { worker: '1' }, value: 4 }] },
      { name: 'sandbar_frames_in_total', help: 'Frames.', type: 'counter', samples: [{ labels: {}, value: 10 }] },
    ]);
    expect(text).to.equal([
      '# HELP sandbar_sessions Open sessions.',
      '# TYPE sandbar_sessions gauge',
      'sandbar_sessions{worker="0"} 3',
      'sandbar_sessions{worker="1"} 4',
      '# HELP sandbar_frames_in_total Frames.',
      '# TYPE sandbar_frames_in_total counter',
      'sandbar_frames_in_total 10',
      '',
    ].join('\n'));
  });

  it('escapes label values and help text; writes special floats as Prometheus does', () => {
    const text = renderText([{ name: 'x', help: 'a\\b\nc', type: 'gauge', samples: [{ labels: { v: 'q"\\\n' }, value: Infinity }] }]);
    expect(text).to.include('# HELP x a\\\\b\\nc\n');
    expect(text).to.include('x{v="q\\"\\\\\\n"} +Inf\n');
    expect([formatValue(NaN), formatValue(-Infinity), formatValue(0.25)]).to.deep.equal(['NaN', '-Inf', '0.25']);
  });

  it('refuses bad metric and label names (Prometheus would reject the whole scrape)', () => {
    expect(() => renderText([{ name: 'bad-name', help: '', type: 'gauge', samples: [{ labels: {}, value: 1 }] }])).to.throw(/bad metric name/);
    expect(() => renderText([{ name: 'ok', help: '', type: 'gauge', samples: [{ labels: { 'le-x': '1' }, value: 1 }] }])).to.throw(/bad label name/);
  });

  it('a histogram has cumulative _bucket lines up to +Inf, then _sum and _count, per label set', () => {
    const h = new Histogram([0.01, 0.1]);
    h.observeMs(5);
    h.observeMs(50);
    h.observeMs(500);
    const { samples, meta } = parse(renderText([histogramFamily('lat_seconds', 'Latency.', [{ labels: { kind: 'dm' }, hist: h }])]));
    expect(meta.get('lat_seconds')).to.deep.equal({ help: 'Latency.', type: 'histogram' });
    expect(samples.map((s) => `${s.name}{${Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).join(',')}} ${s.value}`)).to.deep.equal([
      'lat_seconds_bucket{kind=dm,le=0.01} 1',
      'lat_seconds_bucket{kind=dm,le=0.1} 2',
      'lat_seconds_bucket{kind=dm,le=+Inf} 3',
      'lat_seconds_sum{kind=dm} 0.555',
      'lat_seconds_count{kind=dm} 3',
    ]);
  });

  it('merges the families of several workers: one HELP/TYPE, every worker\'s samples, labels first', () => {
    const w = (n: number): Family[] => [{ name: 'sandbar_sessions', help: 'S.', type: 'gauge', samples: [{ labels: {}, value: n }] }];
    const merged = mergeFamilies([withLabels(w(1), { host: 'h1', worker: '0' }), withLabels(w(2), { host: 'h1', worker: '1' })]);
    expect(renderText(merged)).to.equal('# HELP sandbar_sessions S.\n# TYPE sandbar_sessions gauge\nsandbar_sessions{host="h1",worker="0"} 1\nsandbar_sessions{host="h1",worker="1"} 2\n');
  });

  it('refuses to merge one name with two types', () => {
    expect(() => mergeFamilies([[{ name: 'a', help: '', type: 'gauge', samples: [] }], [{ name: 'a', help: '', type: 'counter', samples: [] }]])).to.throw(/a gauge and a counter/);
  });

  it('leaves families without samples out', () => {
    expect(renderText([{ name: 'a', help: 'A', type: 'gauge', samples: [] }])).to.equal('');
  });

  it('whatever the label values, every line parses back to the same labels and value (property)', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.string(), fc.double({ noNaN: true })), { minLength: 1, maxLength: 20 }), (rows) => {
      const fam: Family = { name: 'p', help: 'h', type: 'gauge', samples: rows.map(([v, value], i) => ({ labels: { i: String(i), v }, value })) };
      const { samples } = parse(renderText([fam]));
      expect(samples).to.have.length(rows.length);
      samples.forEach((s, i) => {
        expect(s.labels.v).to.equal(rows[i]![0]);
        expect(Number(s.value.replace('+Inf', 'Infinity').replace('-Inf', '-Infinity'))).to.equal(rows[i]![1]);
      });
    }), { numRuns: 200 });
  });
});
