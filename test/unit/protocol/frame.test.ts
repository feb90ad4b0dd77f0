import { expect } from 'chai';
// @ts-ignore -- phoenix ships no type declarations; the shape used is typed below.
import * as phoenix from 'phoenix';
import { SandbarError } from '../../../src/errors.js';
import {
  decodeText, encodeBroadcast, encodeBroadcastPrefix, encodePush, encodeReply, encodeWithRawPayload, Events,
} from '../../../src/protocol/index.js';

interface ClientMsg { join_ref: string | null; ref: string | null; topic: string; event: string; payload: unknown }
/** The reference client's serializer (assets/js/phoenix/serializer.js). */
const Serializer = (phoenix as unknown as { Serializer: { encode(m: ClientMsg, cb: (r: unknown) => unknown): unknown; decode(raw: unknown, cb: (m: ClientMsg) => unknown): unknown } }).Serializer;
const clientEncode = (m: ClientMsg) => Serializer.encode(m, (r) => r) as string;
const clientDecode = (raw: string) => Serializer.decode(raw, (m) => m) as ClientMsg;

function expectMalformed(text: string, reason: RegExp): void {
  let caught: unknown;
  try { decodeText(text); } catch (err) { caught = err; }
  expect(caught, text).to.be.instanceOf(SandbarError);
  expect((caught as SandbarError).code).to.equal('SANDBAR_ERR_FRAME_MALFORMED');
  expect((caught as SandbarError).message).to.match(reason);
}

describe('protocol/frame', () => {
  describe('decodeText', () => {
    it('decodes what the phoenix client sends (join, push, heartbeat)', () => {
      const join = clientEncode({ join_ref: '1', ref: '1', topic: 'room:lobby', event: 'phx_join', payload: { since: 3 } });
      expect(decodeText(join)).to.deep.equal({ joinRef: '1', ref: '1', topic: 'room:lobby', event: 'phx_join', payload: { since: 3 } });
      const hb = clientEncode({ join_ref: null, ref: '7', topic: 'phoenix', event: 'heartbeat', payload: {} });
      expect(decodeText(hb)).to.deep.equal({ joinRef: null, ref: '7', topic: 'phoenix', event: 'heartbeat', payload: {} });
    });

    it('accepts any JSON payload', () => {
      for (const payload of [null, 1, 'x', [1, 2], { a: { b: [true] } }]) {
        expect(decodeText(JSON.stringify(['1', '2', 't', 'e', payload])).payload).to.deep.equal(payload);
      }
    });

    const cases: [string, string, RegExp][] = [
      ['not JSON', '[1,2', /not valid JSON/],
      ['empty text', '', /not valid JSON/],
      ['a V1 object frame', '{"topic":"t","event":"e","payload":{},"ref":"1"}', /object, not an array.*V1/],
      ['a JSON string', '"hi"', /not a JSON array/],
      ['JSON null', 'null', /not a JSON array/],
      ['4 elements', '["1","1","t","e"]', /4 elements, expected 5/],
      ['6 elements', '["1","1","t","e",{},1]', /6 elements, expected 5/],
      ['empty array', '[]', /0 elements/],
      ['numeric join_ref', '[1,"1","t","e",{}]', /join_ref must be a string or null/],
      ['object join_ref', '[{},"1","t","e",{}]', /join_ref must be a string or null/],
      ['numeric ref', '["1",1,"t","e",{}]', /ref must be a string or null/],
      ['missing topic', '["1","1",null,"e",{}]', /topic must be a non-empty string/],
      ['empty topic', '["1","1","","e",{}]', /topic must be a non-empty string/],
      ['numeric topic', '["1","1",5,"e",{}]', /topic must be a non-empty string/],
      ['empty event', '["1","1","t","",{}]', /event must be a non-empty string/],
      ['array event', '["1","1","t",["e"],{}]', /event must be a non-empty string/],
    ];
    for (const [name, text, reason] of cases) {
      it(`rejects ${name}`, () => expectMalformed(text, reason));
    }

    it('keeps client text out of the JSON error reason', () => {
      try { decodeText('secret-garbage'); } catch (err) {
        expect((err as Error).message).not.to.contain('secret');
        expect((err as Error).cause).to.be.instanceOf(SyntaxError);
        return;
      }
      expect.fail('did not throw');
    });
  });

  describe('encoders', () => {
    it('encodeReply builds [join_ref, ref, topic, "phx_reply", {status, response}]', () => {
      const text = encodeReply('1', '2', 'room:lobby', 'ok', { id: 'm1' });
      expect(JSON.parse(text)).to.deep.equal(['1', '2', 'room:lobby', 'phx_reply', { status: 'ok', response: { id: 'm1' } }]);
      expect(clientDecode(text)).to.deep.equal({ join_ref: '1', ref: '2', topic: 'room:lobby', event: Events.reply, payload: { status: 'ok', response: { id: 'm1' } } });
      expect(decodeText(text)).to.deep.equal({ joinRef: '1', ref: '2', topic: 'room:lobby', event: 'phx_reply', payload: { status: 'ok', response: { id: 'm1' } } });
    });

    it('encodeReply answers a heartbeat with a null join_ref and an empty response by default', () => {
      expect(encodeReply(null, '9', 'phoenix', 'ok', undefined)).to.equal('[null,"9","phoenix","phx_reply",{"status":"ok","response":{}}]');
      expect(JSON.parse(encodeReply('1', '2', 't', 'error', { reason: 'nope' }))[4]).to.deep.equal({ status: 'error', response: { reason: 'nope' } });
    });

    it('encodePush builds [join_ref, null, topic, event, payload]', () => {
      const text = encodePush('3', 'user:ann', 'dm', { body: 'hi "there" \u2028 é' });
      expect(clientDecode(text)).to.deep.equal({ join_ref: '3', ref: null, topic: 'user:ann', event: 'dm', payload: { body: 'hi "there" \u2028 é' } });
      expect(encodePush('3', 't', 'e', undefined)).to.equal('["3",null,"t","e",{}]');
    });

    it('a broadcast is prefix + already-serialized payload + "]", with null refs', () => {
      const payloadJson = JSON.stringify({ from: 'ann', body: 'yo' });
      const frame = encodeBroadcastPrefix('room:lobby', 'msg') + payloadJson + ']';
      expect(frame).to.equal(encodeBroadcast('room:lobby', 'msg', { from: 'ann', body: 'yo' }));
      expect(frame).to.equal(encodeWithRawPayload(null, null, 'room:lobby', 'msg', payloadJson));
      expect(clientDecode(frame)).to.deep.equal({ join_ref: null, ref: null, topic: 'room:lobby', event: 'msg', payload: { from: 'ann', body: 'yo' } });
    });

    it('escapes topics and events safely', () => {
      const text = encodeWithRawPayload('a"b', null, 'room:\\x', 'ev\n', '[]');
      expect(decodeText(text)).to.deep.equal({ joinRef: 'a"b', ref: null, topic: 'room:\\x', event: 'ev\n', payload: [] });
    });
  });
});
