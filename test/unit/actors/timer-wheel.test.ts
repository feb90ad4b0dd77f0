import { expect } from 'chai';
import { SimulatedClock } from '../../../src/actors/clock.js';
import { TimerWheel, type TimerEntry } from '../../../src/actors/timer-wheel.js';

function entry(fired: number[]): TimerEntry {
  return { timerSlot: -1, onTimer: (now) => { fired.push(now); } };
}

describe('timer wheel (simulated clock)', () => {
  it('fires a deadline within one tick after it, never before', () => {
    const clock = new SimulatedClock();
    const wheel = new TimerWheel(clock, 100);
    const fired: number[] = [];
    wheel.schedule(entry(fired), 250);
    clock.advance(200);
    expect(fired).to.deep.equal([]);
    clock.advance(100);
    expect(fired).to.have.length(1);
    expect(fired[0]).to.be.at.least(250).and.at.most(350);
  });

  it('cancel and reschedule move an entry in O(1) without firing it twice', () => {
    const clock = new SimulatedClock();
    const wheel = new TimerWheel(clock, 100);
    const fired: number[] = [];
    const e = entry(fired);
    wheel.schedule(e, 100);
    wheel.schedule(e, 1000);
    expect(wheel.size).to.equal(1);
    clock.advance(500);
    expect(fired).to.deep.equal([]);
    wheel.cancel(e);
    clock.advance(1000);
    expect(fired).to.deep.equal([]);
    expect(wheel.size).to.equal(0);
  });

  it('holds many entries and fires each exactly once', () => {
    const clock = new SimulatedClock();
    const wheel = new TimerWheel(clock, 50);
    const fired: number[] = [];
    for (let i = 0; i < 10000; i++) wheel.schedule(entry(fired), (i % 100) * 10);
    clock.advance(2000);
    expect(fired).to.have.length(10000);
    expect(wheel.size).to.equal(0);
  });

  it('an entry that throws does not stop the others', () => {
    const clock = new SimulatedClock();
    const wheel = new TimerWheel(clock, 10);
    const errors: unknown[] = [];
    wheel.onError = (e) => { errors.push(e); };
    const fired: number[] = [];
    wheel.schedule({ timerSlot: -1, onTimer: () => { throw new Error('x'); } }, 10);
    wheel.schedule(entry(fired), 10);
    clock.advance(20);
    expect(errors).to.have.length(1);
    expect(fired).to.have.length(1);
  });
});
