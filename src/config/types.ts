/**
 * The type of the loaded configuration, derived from the schema: a key is
 * declared once, in schema.ts, and appears here by itself. `section.key`
 * becomes `config.section.key`, a top-level key `config.key`; its type
 * follows its schema type (an enum is the union of its values), and an
 * `optional` key may be absent. The two table-valued keys, which the schema
 * cannot describe, are added explicitly.
 */
import type { schema } from './schema.js';
import type { KeyConfig, Policy, RoomRule } from './tables.js';

type Schema = typeof schema;
type Key = keyof Schema;

/** The value type of one key. */
type ValueOf<S> =
  S extends { readonly type: 'string' } ? string
    : S extends { readonly type: 'integer' | 'number' } ? number
      : S extends { readonly type: 'boolean' } ? boolean
        : S extends { readonly type: 'string[]' } ? readonly string[]
          : S extends { readonly type: 'enum'; readonly values: readonly (infer V)[] } ? V
            : never;

type IsOptional<S> = S extends { readonly optional: true } ? true : false;

/** The keys of one section (`cluster` for `cluster.*`), without the section. */
type SectionKeys<Sec extends string> = Key extends infer K ? (K extends `${Sec}.${infer Rest}` ? Rest : never) : never;

/** The keys with no section. */
type TopKeys = Key extends infer K ? (K extends `${string}.${string}` ? never : K) : never;

/** The sections: the part of a dotted key before its dot. */
type Sections = Key extends infer K ? (K extends `${infer Sec}.${string}` ? Sec : never) : never;

/** A group of keys as an object: required keys as such, optional ones with `?`. */
type Group<Prefix extends string, Names extends string> =
  { readonly [N in Names as IsOptional<Schema[`${Prefix}${N}` & Key]> extends true ? never : N]: ValueOf<Schema[`${Prefix}${N}` & Key]> }
  & { readonly [N in Names as IsOptional<Schema[`${Prefix}${N}` & Key]> extends true ? N : never]?: ValueOf<Schema[`${Prefix}${N}` & Key]> };

/** Flattens an intersection for readable hovers and messages. */
type Flat<T> = { [K in keyof T]: T[K] } & {};

type FromSchema = Flat<Group<'', TopKeys>> & { readonly [Sec in Sections]: Flat<Group<`${Sec}.`, SectionKeys<Sec>>> };

/** What the schema cannot express: the table-valued keys (file only), and the authz policy as its own type. */
interface Tables {
  readonly auth: {
    /** [[auth.keys]] (file only; each file already read). */
    readonly keys: readonly KeyConfig[];
  };
  readonly authz: {
    readonly default: Policy;
    /** [[authz.rooms]] (file only), first match wins. */
    readonly rooms: readonly RoomRule[];
  };
}

/**
 * The resolved, validated, frozen configuration (see schema.ts for every
 * key's meaning). `cluster.workers` is resolved: never 0 after loading (0 in
 * the file means os.availableParallelism()); `hostId` is never empty.
 */
export type SandbarConfig = Flat<Omit<FromSchema, keyof Tables> & {
  readonly [Sec in keyof Tables]: Flat<Omit<FromSchema[Sec], keyof Tables[Sec]> & Tables[Sec]>;
}>;
