// The phoenix package ships no type declarations: just enough for the tests, which use its client loosely.
declare module 'phoenix' {
  export class Socket {
    constructor(endPoint: string, opts?: Record<string, unknown>);
    [member: string]: any;
  }
  export class Channel {
    [member: string]: any;
  }
  export class Presence {
    constructor(channel: any, opts?: Record<string, unknown>);
    static syncState(...args: any[]): any;
    static syncDiff(...args: any[]): any;
    static list(...args: any[]): any;
    [member: string]: any;
  }
  export const LongPoll: any;
}
