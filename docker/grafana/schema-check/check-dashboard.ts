// Type-checks the provisioned dashboard against Grafana's published schema: `npx tsc -p .`
// fails when a required field is missing (schemaVersion, a panel's type, a field config's
// defaults) or a field has the wrong type (a string where the schema wants a number, an object
// where it wants an array).
//
// A JSON import types every string as `string`, never as a literal, so a field the schema
// types as a string enum or literal union (a threshold's `mode`, a variable's `type`) could
// never be assigned from JSON. `Widened<T>` relaxes exactly those to their base type and
// keeps every other part of the schema as it is.
import type { Dashboard } from '@grafana/schema';
import dashboard from '../dashboards/attnserve.json' with { type: 'json' };

type Widened<T> = T extends string
  ? string
  : T extends number
    ? number
    : T extends boolean
      ? boolean
      : T extends ReadonlyArray<infer Item>
        ? Array<Widened<Item>>
        : T extends object
          ? { [Key in keyof T]: Widened<T[Key]> }
          : T;

export const checked: Widened<Dashboard> = dashboard;
