import { expect } from 'chai';
import { formatStatus, table } from '../../../src/status-table.js';

describe('cli: sandbar status as tables', () => {
  it('pads columns to their widest cell, numbers right-aligned, text left-aligned', () => {
    expect(table(['NAME', 'N'], [['a', 5], ['long-name', 120]])).to.equal('NAME         N\na            5\nlong-name  120');
  });

  it('shows every host (suspect ones as such) sorted, then the answering host\'s workers', () => {
    const text = formatStatus({
      cluster: 'prod', host: 'host-1', version: '0.1.0', shards: 1024, replicas: 1, sessions: 7, restarts: 2,
      hosts: [
        { hostId: 'host-2', workers: [0, 1], load: 3, version: '0.1.0', suspect: true, silentMs: 1800 },
        { hostId: 'host-1', workers: [0], load: 4, version: '0.1.0', suspect: false, silentMs: 120 },
      ],
      workers: [
        { index: 0, pid: 4242, listening: true, serving: true, sessions: 4, masterShards: 512, replicaShards: 512, heapUsed: 64 * 1048576, rss: 150 * 1048576 },
        { index: 1, pid: null, listening: false, serving: false, sessions: 0, masterShards: 0, replicaShards: 0, heapUsed: 0, rss: 0 },
      ],
    });
    expect(text).to.equal([
      'cluster prod: 2 host(s), 1024 shards, 1 replica(s) each; answered by host-1 (sandbar 0.1.0)',
      '',
      'HOST    STATE    WORKERS  SESSIONS  VERSION  LAST HEARD',
      'host-1  alive    0               4  0.1.0    0.1 s ago',
      'host-2  suspect  0,1             3  0.1.0    1.8 s ago',
      '',
      'workers of host-1 (7 session(s), 2 restart(s)):',
      'WORKER   PID  STATE    SESSIONS  MASTER  REPLICA  HEAP   RSS',
      '     0  4242  serving         4     512      512  64 MB  150 MB',
      '     1     -  down            0       0        0  0 MB   0 MB',
      '',
    ].join('\n'));
  });
});
