/**
 * The kinds of change `fanc check` reports, each with a stable code and a severity:
 * `breaking` fails a service that did not bump its major version, `warning` is reported and
 * fails only under `--strict`, `compatible` is listed in the JSON report. docs/fanc-check.md
 * documents the table; a test keeps the two in step.
 */

export type Severity = "breaking" | "warning" | "compatible";

/** Where a change sits in one version of the IDL (1-based line and column). */
export interface SourceLocation {
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

/** One change between the two models. */
export interface Change {
  /** Stable code: `FAN1010`. */
  readonly code: string;
  readonly kind: ChangeKind;
  readonly severity: Severity;
  /** `severity === "breaking"`. */
  readonly breaking: boolean;
  /** What changed: `retail.wines.Wine.price`, `retail.wines.PublicWines.get.storeId`. */
  readonly path: string;
  readonly message: string;
  /** The declaration it belongs to (fully qualified). */
  readonly decl: string;
  /** Where it is in the released IDL (for an added member: its enclosing declaration). */
  readonly before?: SourceLocation;
  /** Where it is in the new IDL (for a removed member: its enclosing declaration). */
  readonly after?: SourceLocation;
}

export const CHANGE_KINDS = {
  removed: { code: "FAN1001", severity: "breaking" },
  renamed: { code: "FAN1002", severity: "breaking" },
  "type-changed": { code: "FAN1003", severity: "breaking" },
  "field-required": { code: "FAN1004", severity: "breaking" },
  "required-field-added": { code: "FAN1005", severity: "breaking" },
  "enum-value-removed": { code: "FAN1006", severity: "breaking" },
  "union-member-removed": { code: "FAN1007", severity: "breaking" },
  "error-code-changed": { code: "FAN1008", severity: "breaking" },
  "kind-changed": { code: "FAN1009", severity: "breaking" },
  "timeout-shortened": { code: "FAN1010", severity: "breaking" },
  "shard-key-changed": { code: "FAN1011", severity: "breaking" },
  "shards-changed": { code: "FAN1012", severity: "breaking" },
  "route-changed": { code: "FAN1013", severity: "breaking" },
  "transport-removed": { code: "FAN1014", severity: "breaking" },
  "config-required": { code: "FAN1015", severity: "breaking" },
  "constraint-tightened": { code: "FAN1016", severity: "breaking" },
  "idempotent-removed": { code: "FAN1017", severity: "breaking" },
  "unique-changed": { code: "FAN1018", severity: "breaking" },
  "dependency-added": { code: "FAN1019", severity: "breaking" },
  "dependency-range-changed": { code: "FAN1020", severity: "breaking" },
  "auth-tightened": { code: "FAN1021", severity: "breaking" },
  "state-mode-changed": { code: "FAN1022", severity: "breaking" },
  "event-delivery-changed": { code: "FAN1023", severity: "breaking" },
  "config-changed": { code: "FAN1024", severity: "breaking" },
  "fallback-removed": { code: "FAN1025", severity: "breaking" },
  "state-sharding-changed": { code: "FAN1026", severity: "breaking" },
  "error-added": { code: "FAN1050", severity: "warning" },
  "default-changed": { code: "FAN1051", severity: "warning" },
  "since-missing": { code: "FAN1052", severity: "warning" },
  added: { code: "FAN1090", severity: "compatible" },
  "constraint-loosened": { code: "FAN1091", severity: "compatible" },
  "fallback-added": { code: "FAN1092", severity: "compatible" },
} as const satisfies Record<string, { readonly code: string; readonly severity: Severity }>;

/** The kinds of change `fanc check` reports. */
export type ChangeKind = keyof typeof CHANGE_KINDS;

/**
 * A change as the comparisons make it; `at` is the location key when it is not `path`, and
 * `atAfter` its key in the new IDL when that differs (a rename: the new name).
 */
export interface Found extends Change {
  readonly at?: string;
  readonly atAfter?: string;
}

/** A change of `kind` in `decl` at `path`. */
export function change(kind: ChangeKind, decl: string, path: string, message: string, at?: string): Found {
  const { code, severity } = CHANGE_KINDS[kind];
  return {
    code,
    kind,
    severity,
    breaking: severity === "breaking",
    decl,
    path,
    message,
    ...(at === undefined ? {} : { at }),
  };
}
