/**
 * A network namespace with two veth links to the test's own namespace, for
 * partition tests (root only): `nats` carries NATS routes, `client` carries
 * the test's clients, so cutting `nats` partitions a host and its NATS node
 * from the rest of the cluster while its clients still reach it.
 * Everything is created and removed by the test; addresses are 10.213.x.0/30
 * and 10.214.x.0/30 with x from the pid, so parallel runs do not collide.
 */
import { execFileSync } from 'node:child_process';

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

export interface Link { root: string; inside: string; rootAddr: string; nsAddr: string }

export class NetNs {
  readonly name: string;
  readonly nats: Link;
  readonly client: Link;

  private constructor(tag: string) {
    const id = process.pid % 100000;
    const x = (process.pid % 250) + 1;
    this.name = `sb${tag}${id}`;
    this.nats = { root: `sbr${id}`, inside: `sbs${id}`, rootAddr: `10.213.${x}.1`, nsAddr: `10.213.${x}.2` };
    this.client = { root: `sbc${id}`, inside: `sbd${id}`, rootAddr: `10.214.${x}.1`, nsAddr: `10.214.${x}.2` };
  }

  /** Why namespaces cannot be made here (not root, no `ip`), or null when they can. */
  static unavailable(): string | null {
    if (process.getuid?.() !== 0) return 'not running as root';
    const probe = `sbprobe${process.pid % 100000}`;
    try { ip('netns', 'add', probe); ip('netns', 'del', probe); return null; } catch (err) { return `ip netns failed: ${(err as { stderr?: Buffer }).stderr?.toString().trim() || (err as Error).message}`; }
  }

  static create(tag = 'p'): NetNs {
    const ns = new NetNs(tag);
    ns.destroy(); // leftovers of a killed run with the same pid
    ip('netns', 'add', ns.name);
    ip('netns', 'exec', ns.name, 'ip', 'link', 'set', 'lo', 'up');
    for (const l of [ns.nats, ns.client]) {
      ip('link', 'add', l.root, 'type', 'veth', 'peer', 'name', l.inside);
      ip('link', 'set', l.inside, 'netns', ns.name);
      ip('addr', 'add', `${l.rootAddr}/30`, 'dev', l.root);
      ip('link', 'set', l.root, 'up');
      ip('netns', 'exec', ns.name, 'ip', 'addr', 'add', `${l.nsAddr}/30`, 'dev', l.inside);
      ip('netns', 'exec', ns.name, 'ip', 'link', 'set', l.inside, 'up');
    }
    return ns;
  }

  /** Command prefix that runs a program inside the namespace. */
  get wrap(): string[] { return ['ip', 'netns', 'exec', this.name]; }

  cut(l: Link): void { ip('link', 'set', l.root, 'down'); }
  heal(l: Link): void { ip('link', 'set', l.root, 'up'); }

  destroy(): void {
    for (const l of [this.nats, this.client]) { try { ip('link', 'del', l.root); } catch { /* not there */ } }
    try { ip('netns', 'del', this.name); } catch { /* not there */ }
  }
}
