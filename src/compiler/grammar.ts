/**
 * The fan grammar: one Chevrotain CST parser whose rules are class properties. One instance is
 * created and reused for every file. Nothing here leaks Chevrotain types beyond `parser.ts`
 * and `cst-to-ast.ts`.
 */
import { CstParser, EOF, type IParserErrorMessageProvider, type IToken, type TokenType, tokenMatcher } from "chevrotain";
import { allTokens, Kw, MemberKeyword, Name, P, StringLiteral, DurationLiteral, FloatLiteral, IntLiteral } from "./lexer.js";

/** Human descriptions of what may come next, for the rules where a token list is unhelpful. */
const EXPECTATIONS: Readonly<Record<string, string>> = {
  file: "a declaration (`package`, `import`, `version`, `struct`, `enum`, `union`, `error` or `service`)",
  declaration: "`struct`, `enum`, `union`, `error` or `service`",
  serviceMember: "a service member (`rpc`, `push`, `event`, `state`, `on`, `depends` or `config`)",
  expr: "a value",
  typeRef: "a type",
};

function describe(t: IToken): string {
  if (t.tokenType === EOF) return "end of file";
  const img = t.image.length > 30 ? `${t.image.slice(0, 30)}...` : t.image;
  return `\`${img}\``;
}

function label(t: TokenType): string {
  return t.LABEL ?? t.name;
}

function firstTokens(paths: TokenType[][][]): string {
  const seen = new Set<string>();
  for (const alt of paths) for (const path of alt) if (path[0] !== undefined) seen.add(label(path[0]));
  const list = [...seen];
  return list.length <= 1 ? (list[0] ?? "something else") : `${list.slice(0, -1).join(", ")} or ${list[list.length - 1]}`;
}

/** Error messages in the compiler's voice: "expected X but found Y". */
const messages: IParserErrorMessageProvider = {
  buildMismatchTokenMessage: ({ expected, actual }) =>
    expected === EOF ? `unexpected ${describe(actual)}; expected ${EXPECTATIONS["file"]}` : `expected ${label(expected)} but found ${describe(actual)}`,
  buildNotAllInputParsedMessage: ({ firstRedundant }) => `unexpected ${describe(firstRedundant)}; expected ${EXPECTATIONS["file"]}`,
  buildNoViableAltMessage: ({ expectedPathsPerAlt, actual, ruleName }) =>
    `expected ${EXPECTATIONS[ruleName] ?? firstTokens(expectedPathsPerAlt)} but found ${describe(actual[0]!)}`,
  buildEarlyExitMessage: ({ expectedIterationPaths, actual, ruleName }) =>
    `expected ${EXPECTATIONS[ruleName] ?? firstTokens([expectedIterationPaths])} but found ${describe(actual[0]!)}`,
};

function isName(t: IToken): boolean {
  return tokenMatcher(t, Name);
}

/** The grammar. Rule order follows the IDL reference, file level first. */
export class FanParser extends CstParser {
  /** The text being parsed (read by gates that look at line breaks). */
  text = "";

  constructor() {
    super(allTokens as TokenType[], { recoveryEnabled: true, nodeLocationTracking: "onlyOffset", maxLookahead: 3, errorMessageProvider: messages });
    this.performSelfAnalysis();
  }

  file = this.RULE("file", () => {
    this.MANY(() =>
      this.OR([
        { ALT: () => this.SUBRULE(this.packageDecl) },
        { ALT: () => this.SUBRULE(this.importDecl) },
        { ALT: () => this.SUBRULE(this.versionDecl) },
        { ALT: () => this.SUBRULE(this.declaration) },
        { ALT: () => this.SUBRULE(this.separator) },
      ]),
    );
  });

  separator = this.RULE("separator", () => {
    this.OR([{ ALT: () => this.CONSUME(P.Comma) }, { ALT: () => this.CONSUME(P.Semi) }]);
  });

  packageDecl = this.RULE("packageDecl", () => {
    this.CONSUME(Kw.package);
    this.SUBRULE(this.qualifiedName);
  });

  importDecl = this.RULE("importDecl", () => {
    this.CONSUME(Kw.import);
    this.SUBRULE(this.qualifiedName);
    this.OPTION(() => {
      this.CONSUME(Kw.as);
      this.CONSUME(Name, { LABEL: "alias" });
    });
  });

  versionDecl = this.RULE("versionDecl", () => {
    this.CONSUME(Kw.version);
    this.CONSUME(StringLiteral, { LABEL: "value" });
  });

  declaration = this.RULE("declaration", () => {
    this.MANY(() => this.SUBRULE(this.decorator));
    this.OR([
      { ALT: () => this.SUBRULE(this.structDecl) },
      { ALT: () => this.SUBRULE(this.enumDecl) },
      { ALT: () => this.SUBRULE(this.unionDecl) },
      { ALT: () => this.SUBRULE(this.errorDecl) },
      { ALT: () => this.SUBRULE(this.serviceDecl) },
    ]);
  });

  /** `Name @decorators* {` shared by every declaration after its keyword. */
  private declHead(): void {
    this.CONSUME(Name, { LABEL: "name" });
    // MANY2: the calling rule uses MANY for its body, and indices must be unique per rule.
    this.MANY2(() => this.SUBRULE(this.decorator));
    this.CONSUME(P.LCurly);
  }

  structDecl = this.RULE("structDecl", () => {
    this.CONSUME(Kw.struct);
    this.declHead();
    this.MANY(() => this.OR([{ ALT: () => this.SUBRULE(this.field) }, { ALT: () => this.SUBRULE(this.separator) }]));
    this.CONSUME(P.RCurly);
  });

  errorDecl = this.RULE("errorDecl", () => {
    this.CONSUME(Kw.error);
    this.declHead();
    this.MANY(() => this.OR([{ ALT: () => this.SUBRULE(this.field) }, { ALT: () => this.SUBRULE(this.separator) }]));
    this.CONSUME(P.RCurly);
  });

  enumDecl = this.RULE("enumDecl", () => {
    this.CONSUME(Kw.enum);
    this.declHead();
    this.MANY(() => this.OR([{ ALT: () => this.SUBRULE(this.enumMember) }, { ALT: () => this.SUBRULE(this.separator) }]));
    this.CONSUME(P.RCurly);
  });

  enumMember = this.RULE("enumMember", () => {
    this.CONSUME(Name, { LABEL: "name" });
    this.OPTION(() => {
      this.CONSUME(P.Equals);
      this.CONSUME(IntLiteral, { LABEL: "value" });
    });
    this.MANY(() => this.SUBRULE(this.decorator));
  });

  unionDecl = this.RULE("unionDecl", () => {
    this.CONSUME(Kw.union);
    this.declHead();
    this.MANY(() => this.OR([{ ALT: () => this.SUBRULE(this.unionMember) }, { ALT: () => this.SUBRULE(this.separator) }]));
    this.CONSUME(P.RCurly);
  });

  unionMember = this.RULE("unionMember", () => {
    this.CONSUME(Name, { LABEL: "name" });
    this.CONSUME(P.Colon);
    this.SUBRULE(this.typeRef);
    this.MANY(() => this.SUBRULE(this.decorator));
  });

  serviceDecl = this.RULE("serviceDecl", () => {
    this.CONSUME(Kw.service);
    this.declHead();
    this.MANY(() => this.OR([{ ALT: () => this.SUBRULE(this.serviceMember) }, { ALT: () => this.SUBRULE(this.separator) }]));
    this.CONSUME(P.RCurly);
  });

  serviceMember = this.RULE("serviceMember", () => {
    this.MANY(() => this.SUBRULE(this.decorator));
    this.OR([
      { ALT: () => this.SUBRULE(this.dependsMember) },
      { ALT: () => this.SUBRULE(this.configMember) },
      { ALT: () => this.SUBRULE(this.rpcMember) },
      { ALT: () => this.SUBRULE(this.pushMember) },
      { ALT: () => this.SUBRULE(this.eventMember) },
      { ALT: () => this.SUBRULE(this.stateMember) },
      { ALT: () => this.SUBRULE(this.onMember) },
    ]);
  });

  dependsMember = this.RULE("dependsMember", () => {
    this.CONSUME(Kw.depends);
    // `soft` is contextual: in `depends soft "^1"` it is the service's name. Chevrotain's
    // lookahead sees `soft` and a name as different tokens, so the gate looks one further.
    this.OPTION({ GATE: () => isName(this.LA(2)), DEF: () => this.CONSUME(Kw.soft, { LABEL: "soft" }) });
    this.SUBRULE(this.qualifiedName);
    this.CONSUME(StringLiteral, { LABEL: "range" });
  });

  configMember = this.RULE("configMember", () => {
    this.CONSUME(Kw.config);
    this.CONSUME(P.LCurly);
    this.MANY(() => this.OR([{ ALT: () => this.SUBRULE(this.field) }, { ALT: () => this.SUBRULE(this.separator) }]));
    this.CONSUME(P.RCurly);
  });

  rpcMember = this.RULE("rpcMember", () => {
    this.CONSUME(Kw.rpc);
    this.CONSUME(Name, { LABEL: "name" });
    this.SUBRULE(this.params);
    this.OPTION(() => {
      this.CONSUME(P.Colon);
      this.SUBRULE(this.typeRef);
    });
    this.OPTION2(() => {
      this.CONSUME(Kw.throws);
      this.SUBRULE(this.qualifiedName);
      // A `,` may also separate this member from the next one: `throws A, rpc b()`.
      this.MANY({ GATE: () => this.throwsContinues(), DEF: () => {
        this.CONSUME(P.Comma);
        this.SUBRULE2(this.qualifiedName);
      } });
    });
  });

  pushMember = this.RULE("pushMember", () => {
    this.CONSUME(Kw.push);
    this.CONSUME(Name, { LABEL: "name" });
    this.SUBRULE(this.params);
  });

  eventMember = this.RULE("eventMember", () => {
    this.CONSUME(Kw.event);
    this.CONSUME(Name, { LABEL: "name" });
    this.SUBRULE(this.params);
  });

  stateMember = this.RULE("stateMember", () => {
    this.CONSUME(Kw.state);
    this.CONSUME(Name, { LABEL: "name" });
    this.CONSUME(P.Colon);
    this.SUBRULE(this.typeRef);
    this.MANY({ GATE: () => this.stateDecoratorFollows(), DEF: () => this.SUBRULE(this.decorator) });
  });

  onMember = this.RULE("onMember", () => {
    this.CONSUME(Kw.on);
    this.SUBRULE(this.qualifiedName);
  });

  params = this.RULE("params", () => {
    this.CONSUME(P.LParen);
    this.MANY(() => this.OR([{ ALT: () => this.SUBRULE(this.field) }, { ALT: () => this.SUBRULE(this.separator) }]));
    this.CONSUME(P.RParen);
  });

  field = this.RULE("field", () => {
    this.CONSUME(Name, { LABEL: "name" });
    this.OPTION(() => this.CONSUME(P.Question, { LABEL: "optional" }));
    this.CONSUME(P.Colon);
    this.SUBRULE(this.typeRef);
    this.OPTION2(() => {
      this.CONSUME(P.Equals);
      this.SUBRULE(this.expr);
    });
    this.MANY(() => this.SUBRULE(this.decorator));
  });

  typeRef = this.RULE("typeRef", () => {
    this.SUBRULE(this.qualifiedName);
    this.OPTION(() => {
      this.CONSUME(P.LAngle);
      this.SUBRULE(this.typeRef);
      this.MANY(() => {
        this.CONSUME(P.Comma);
        this.SUBRULE2(this.typeRef);
      });
      this.CONSUME(P.RAngle);
    });
  });

  qualifiedName = this.RULE("qualifiedName", () => {
    this.CONSUME(Name, { LABEL: "part" });
    this.MANY(() => {
      this.CONSUME(P.Dot);
      this.CONSUME2(Name, { LABEL: "part" });
    });
  });

  decorator = this.RULE("decorator", () => {
    this.CONSUME(P.At);
    this.CONSUME(Name, { LABEL: "name" });
    this.OPTION(() => {
      this.CONSUME(P.LParen, { LABEL: "open" });
      this.OPTION2(() => {
        this.SUBRULE(this.expr);
        this.MANY(() => {
          this.CONSUME(P.Comma);
          this.SUBRULE2(this.expr);
        });
      });
      this.CONSUME(P.RParen);
    });
  });

  expr = this.RULE("expr", () => {
    this.OR([
      { ALT: () => this.CONSUME(StringLiteral, { LABEL: "string" }) },
      { ALT: () => this.CONSUME(DurationLiteral, { LABEL: "duration" }) },
      { ALT: () => this.CONSUME(FloatLiteral, { LABEL: "float" }) },
      { ALT: () => this.CONSUME(IntLiteral, { LABEL: "int" }) },
      { ALT: () => this.SUBRULE(this.listLit) },
      { ALT: () => this.SUBRULE(this.qualifiedName) },
    ]);
  });

  listLit = this.RULE("listLit", () => {
    this.CONSUME(P.LSquare);
    this.OPTION(() => {
      this.SUBRULE(this.expr);
      this.MANY(() => {
        this.CONSUME(P.Comma);
        this.SUBRULE2(this.expr);
      });
      this.OPTION2(() => this.CONSUME2(P.Comma));
    });
    this.CONSUME(P.RSquare);
  });

  /** After `throws A`, a `,` continues the list unless it is followed by the next member. */
  private throwsContinues(): boolean {
    if (!tokenMatcher(this.LA(1), P.Comma)) return false;
    const next = this.LA(2);
    if (!isName(next)) return false;
    const after = this.LA(3);
    const startsMember = tokenMatcher(next, MemberKeyword) && (isName(after) || tokenMatcher(after, P.LCurly));
    return !startsMember;
  }

  /**
   * `state s: T @delta` — decorators after the type belong to the state when they are on the
   * same line, or when no member follows them; otherwise they start the next member
   * (`@delta` on its own line above `state t: U`).
   */
  private stateDecoratorFollows(): boolean {
    if (!tokenMatcher(this.LA(1), P.At)) return false;
    const prev = this.LA(0);
    const between = this.text.slice(prev.startOffset + prev.image.length, this.LA(1).startOffset);
    if (!/[\r\n]/.test(between)) return true;
    let k = 1;
    while (tokenMatcher(this.LA(k), P.At)) {
      k += 2;
      if (!tokenMatcher(this.LA(k), P.LParen)) continue;
      let depth = 0;
      do {
        const t = this.LA(k++);
        if (t.tokenType === EOF) return true;
        if (tokenMatcher(t, P.LParen)) depth++;
        else if (tokenMatcher(t, P.RParen)) depth--;
      } while (depth > 0);
    }
    return !tokenMatcher(this.LA(k), MemberKeyword);
  }
}

/** Tokens after which a new top-level item can start; used to resume after junk. */
export const TOP_LEVEL_STARTERS: readonly TokenType[] = [Kw.package, Kw.import, Kw.version, Kw.struct, Kw.enum, Kw.union, Kw.error, Kw.service, P.At];

/** Re-exported for the AST builder. */
export { DurationLiteral, FloatLiteral, IntLiteral, StringLiteral };
