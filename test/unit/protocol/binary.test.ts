import { expect } from 'chai';
// @ts-ignore -- phoenix ships no type declarations; the shape used is typed below.
import * as phoenix from 'phoenix';
import { SandbarError } from '../../../src/errors.js';
import { decodeBinary, encodeBinaryBroadcast, encodeBinaryPush, encodeBinaryReply } from '../../../src/protocol/index.js';

interface ClientMsg { join_ref: string | null; ref: string | null; topic: string; event: string; payload: unknown }
/**
 * The reference client's own serializer (assets/js/phoenix/serializer.js): it
 * encodes a push as binary when the payload is an ArrayBuffer and decodes an
 * ArrayBuffer as a binary frame, so no byte layout is reproduced here.
 */
const Serializer = (phoenix as unknown as { Serializer: { encode(m: ClientMsg, cb: (r: unknown) => unknown): unknown; decode(raw: unknown, cb: (m: ClientMsg) => unknown): unknown } }).Serializer;

function clientEncode(m: Omit<ClientMsg, 'payload'>, payload: Uint8Array): Uint8Array {
  const ab = payload.buffer.slice(payload.byteOffset, payload.byteOffset + payload.byteLength) as ArrayBuffer;
  return new Uint8Array(Serializer.encode({ ...m, payload: ab }, (r) => r) as ArrayBuffer);
}

/** What the client reads from a frame we send (it wants an ArrayBuffer of exactly the frame). */
function clientDecode(buf: Buffer): ClientMsg {
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length) as ArrayBuffer;
  const msg = Serializer.decode(ab, (m) => m) as ClientMsg;
  return msg;
}

const bytes = (...b: number[]) => new Uint8Array(b);
const ascii = (s: string) => [...Buffer.from(s, 'utf8')];

function expectBinaryError(frame: Uint8Array, reason: RegExp): void {
  let caught: unknown;
  try { decodeBinary(frame); } catch (err) { caught = err; }
  expect(caught, `frame ${Buffer.from(frame).toString('hex')}`).to.be.instanceOf(SandbarError);
  expect((caught as SandbarError).code).to.equal('SANDBAR_ERR_FRAME_BINARY');
  expect((caught as SandbarError).message).to.match(reason);
}

function expectEncodeError(fn: () => unknown, reason: RegExp): void {
  expect(fn).to.throw(SandbarError, reason).with.property('code', 'SANDBAR_ERR_FRAME_BINARY');
}

describe('protocol/binary', () => {
  describe('decodeBinary (client push, kind 0)', () => {
    it('decodes a push made by the phoenix client serializer', () => {
      const frame = clientEncode({ join_ref: '12', ref: '345', topic: 'room:lobby', event: 'upload' }, bytes(0, 1, 2, 255));
      const got = decodeBinary(frame);
      expect(got).to.deep.include({ joinRef: '12', ref: '345', topic: 'room:lobby', event: 'upload' });
      expect([...(got.payload as Uint8Array)]).to.deep.equal([0, 1, 2, 255]);
    });

    it('matches the documented byte layout', () => {
      const frame = bytes(0, 1, 2, 3, 1, ...ascii('1'), ...ascii('22'), ...ascii('a:b'), ...ascii('e'), 9, 8);
      expect(Buffer.from(clientEncode({ join_ref: '1', ref: '22', topic: 'a:b', event: 'e' }, bytes(9, 8)))).to.deep.equal(Buffer.from(frame));
      expect(decodeBinary(frame)).to.deep.include({ joinRef: '1', ref: '22', topic: 'a:b', event: 'e' });
    });

    it('returns the payload as a view into the frame, not a copy', () => {
      const frame = clientEncode({ join_ref: '1', ref: '2', topic: 't', event: 'e' }, bytes(7, 7, 7));
      const payload = decodeBinary(frame).payload as Uint8Array;
      expect(payload.buffer).to.equal(frame.buffer);
      expect(payload.byteOffset).to.equal(frame.length - 3);
    });

    it('decodes multi-byte UTF-8, an empty payload and a view with an offset', () => {
      const frame = clientEncode({ join_ref: '1', ref: '2', topic: 'room:café', event: 'ünï' }, bytes());
      const shifted = new Uint8Array(frame.length + 4);
      shifted.set(frame, 3);
      const got = decodeBinary(shifted.subarray(3, 3 + frame.length));
      expect(got).to.deep.include({ topic: 'room:café', event: 'ünï' });
      expect((got.payload as Uint8Array).length).to.equal(0);
    });

    it('reads a zero-length join_ref or ref as null', () => {
      expect(decodeBinary(bytes(0, 0, 0, 1, 1, ...ascii('t'), ...ascii('e')))).to.deep.include({ joinRef: null, ref: null });
    });

    const cases: [string, Uint8Array, RegExp][] = [
      ['an empty frame', bytes(), /empty binary frame/],
      ['a reply (kind 1)', bytes(1, 0, 0, 1, 1, 116, 101), /kind 1 \(reply\) is sent only by the server/],
      ['a broadcast (kind 2)', bytes(2, 1, 1, 116, 101), /kind 2 \(broadcast\) is sent only by the server/],
      ['an unknown kind', bytes(7, 0, 0, 1, 1, 116, 101), /unknown binary frame kind 7/],
      ['a truncated header', bytes(0, 1, 1), /3 bytes is shorter than its 5-byte header/],
      ['sizes past the end', bytes(0, 1, 1, 5, 1, ...ascii('12'), ...ascii('room')), /announces 13 bytes.*has 11/],
      ['an empty topic', bytes(0, 1, 1, 0, 1, ...ascii('12e')), /empty topic/],
      ['an empty event', bytes(0, 1, 1, 1, 0, ...ascii('12t')), /empty event/],
      ['a topic that is not UTF-8', bytes(0, 1, 1, 2, 1, ...ascii('12'), 0xc3, 0x28, ...ascii('e')), /topic is not valid UTF-8/],
      ['a join_ref that is not UTF-8', bytes(0, 1, 1, 1, 1, 0xff, ...ascii('2te')), /join_ref is not valid UTF-8/],
    ];
    for (const [name, frame, reason] of cases) {
      it(`rejects ${name}`, () => expectBinaryError(frame, reason));
    }

    it('rejects every truncation that cuts into the header or strings', () => {
      const frame = clientEncode({ join_ref: '4', ref: '56', topic: 'room:x', event: 'ev' }, bytes(1, 2));
      const stringsEnd = frame.length - 2;
      for (let n = 0; n < stringsEnd; n++) {
        expect(() => decodeBinary(frame.subarray(0, n)), `length ${n}`).to.throw(SandbarError).with.property('code', 'SANDBAR_ERR_FRAME_BINARY');
      }
      // Cutting only into the payload still yields a frame: the payload has no length field.
      expect((decodeBinary(frame.subarray(0, stringsEnd)).payload as Uint8Array).length).to.equal(0);
    });
  });

  describe('encoders, read back by the phoenix client serializer', () => {
    it('encodeBinaryReply (kind 1) reads as a phx_reply with status and an ArrayBuffer response', () => {
      const buf = encodeBinaryReply('1', '9', 'room:lobby', 'ok', bytes(5, 6));
      expect([...buf.subarray(0, 5)]).to.deep.equal([1, 1, 1, 10, 2]);
      const msg = clientDecode(buf);
      expect(msg).to.deep.include({ join_ref: '1', ref: '9', topic: 'room:lobby', event: 'phx_reply' });
      const payload = msg.payload as { status: string; response: ArrayBuffer };
      expect(payload.status).to.equal('ok');
      expect([...new Uint8Array(payload.response)]).to.deep.equal([5, 6]);
      expect((clientDecode(encodeBinaryReply(null, '3', 't', 'error', bytes())).payload as { status: string }).status).to.equal('error');
    });

    it('encodeBinaryPush (kind 0, no ref) reads as a push to the channel', () => {
      const buf = encodeBinaryPush('4', 'user:ann', 'file', bytes(1, 2, 3));
      expect([...buf.subarray(0, 4)]).to.deep.equal([0, 1, 8, 4]);
      const msg = clientDecode(buf);
      expect(msg).to.deep.include({ join_ref: '4', ref: null, topic: 'user:ann', event: 'file' });
      expect([...new Uint8Array(msg.payload as ArrayBuffer)]).to.deep.equal([1, 2, 3]);
    });

    it('encodeBinaryBroadcast (kind 2) reads with null refs', () => {
      const buf = encodeBinaryBroadcast('room:café', 'blob', bytes(42));
      expect([...buf.subarray(0, 3)]).to.deep.equal([2, 10, 4]);
      const msg = clientDecode(buf);
      expect(msg).to.deep.include({ join_ref: null, ref: null, topic: 'room:café', event: 'blob' });
      expect([...new Uint8Array(msg.payload as ArrayBuffer)]).to.deep.equal([42]);
    });

    it('accepts 255-byte strings and refuses 256 bytes, counting UTF-8 bytes', () => {
      const max = 'x'.repeat(255);
      expect(clientDecode(encodeBinaryBroadcast(max, 'e', bytes())).topic).to.equal(max);
      expectEncodeError(() => encodeBinaryBroadcast('x'.repeat(256), 'e', bytes()), /topic .* 256 bytes, at most 255/);
      expectEncodeError(() => encodeBinaryPush('1', 't', 'é'.repeat(128), bytes()), /event .* 256 bytes/);
      expectEncodeError(() => encodeBinaryReply('1', 'r'.repeat(300), 't', 'ok', bytes()), /ref .* 300 bytes/);
    });
  });
});
