/**
 * A decode fast path for value Schemas whose JSON form is their type form:
 * structs, records, arrays and tuples of strings, numbers, booleans,
 * literals and null (with their checks), and unions of those, with no
 * transformation anywhere. For those, `compile` builds (once per keyspace) a
 * plain validator of parsed JSON; a value it accepts decodes to itself, so
 * the keyspace answers it as is instead of running the Schema parser (for
 * the bench's 1 KB struct: JSON.parse + decode 1.67x JSON.parse alone, with
 * this 1.17x; measured in test/core/fastDecode.test.ts's note). A value it refuses goes through the
 * full decode, which reports the issue: the fast path never decides a
 * failure.
 *
 * It is conservative: a property it does not know (an excess key), a node it
 * does not know (a class, a date, a transformation, a recursive schema) and
 * the schema is not compiled or the value is refused.
 *
 * @internal
 */
import type { SchemaAST } from "effect"

type Validate = (u: unknown) => boolean

const hasOwn = Object.prototype.hasOwnProperty

/** The parser's default options (effect's own `defaultParseOptions` is internal). */
const parseOptions: SchemaAST.ParseOptions = {}

/** Whether every check of `ast` accepts `u` (the parser's own filters). */
const checksOf = (ast: SchemaAST.AST): Validate | undefined => {
  const checks = ast.checks
  if (checks === undefined) return undefined
  const filters: Array<SchemaAST.Filter<unknown>> = []
  const collect = (check: SchemaAST.Check<unknown>) => {
    if (check._tag === "Filter") filters.push(check)
    else for (const c of check.checks) collect(c)
  }
  for (const check of checks) collect(check)
  return (u) => {
    for (const filter of filters) if (filter.run(u, ast, parseOptions) !== undefined) return false
    return true
  }
}

const withNodeChecks = (ast: SchemaAST.AST, base: Validate): Validate => {
  const checks = checksOf(ast)
  return checks === undefined ? base : (u) => base(u) && checks(u)
}

/** The validator of `ast`, or `undefined` when its JSON decode is not the identity (or not known to be). */
export const compile = (ast: SchemaAST.AST): Validate | undefined => compileWith(ast, false)

/**
 * `loose`: a validator that accepts at least everything the full JSON decode
 * accepts (an over-approximation: no checks, excess keys and elements, any
 * key optional, numbers sent as strings, undefined sent as null): what a
 * union needs to know that no member before the one it takes could be the
 * one the decode picks.
 */
const compileWith = (ast: SchemaAST.AST, loose: boolean): Validate | undefined => {
  const compile = (node: SchemaAST.AST) => compileWith(node, loose)
  // Loose: a check runs only where the JSON form is the value (strings,
  // booleans, literals, numbers that are numbers); elsewhere it is skipped.
  const withChecks = (node: SchemaAST.AST, base: Validate): Validate => {
    if (!loose) return withNodeChecks(node, base)
    if (node._tag === "String" || node._tag === "Boolean" || node._tag === "Literal") return withNodeChecks(node, base)
    if (node._tag === "Number") {
      const checked = withNodeChecks(node, base)
      return (u) => (typeof u === "number" ? checked(u) : base(u))
    }
    return base
  }
  if (ast.encoding !== undefined) return undefined
  switch (ast._tag) {
    case "String":
      return withChecks(ast, (u) => typeof u === "string")
    case "Number":
      // JSON numbers are finite; NaN and infinities travel as strings, which
      // this refuses (the full decode turns them into numbers).
      return withChecks(
        ast,
        loose ? (u) => typeof u === "number" || typeof u === "string" : (u) => typeof u === "number"
      )
    case "Boolean":
      return withChecks(ast, (u) => typeof u === "boolean")
    case "Null":
      return withChecks(ast, (u) => u === null)
    case "Undefined":
      // JSON has no undefined: the JSON form of one is null, which is not itself.
      return withChecks(ast, loose ? (u) => u === undefined || u === null : (u) => u === undefined)
    case "Literal": {
      const literal = ast.literal
      if (typeof literal === "bigint") return undefined
      return withChecks(ast, (u) => u === literal)
    }
    case "Union": {
      if (ast.options?.mode === "oneOf") return undefined
      // The full decode takes the first member that decodes (dropping excess
      // keys): the value is itself only if that member takes it as it is.
      const members: Array<{ readonly decodes: Validate; readonly exact: Validate }> = []
      for (const type of ast.types) {
        const decodes = compileWith(type, true)
        const exact = compile(type)
        if (decodes === undefined || exact === undefined) return undefined
        members.push({ decodes, exact })
      }
      return withChecks(ast, (u) => {
        for (const member of members) if (member.decodes(u)) return member.exact(u)
        return false
      })
    }
    case "Arrays": {
      if (ast.encodingChecks !== undefined || ast.rest.length > 1) return undefined
      const elements: Array<Validate> = []
      for (const element of ast.elements) {
        if (element.context?.isOptional === true) return undefined
        const v = compile(element)
        if (v === undefined) return undefined
        elements.push(v)
      }
      const restType = ast.rest[0]
      const rest = restType === undefined ? undefined : compile(restType)
      if (restType !== undefined && rest === undefined) return undefined
      const n = elements.length
      return withChecks(ast, (u) => {
        if (!Array.isArray(u)) return false
        if (rest === undefined && !loose ? u.length !== n : u.length < n) return false
        for (let i = 0; i < n; i++) if (!elements[i]!(u[i])) return false
        if (rest !== undefined) for (let i = n; i < u.length; i++) if (!rest(u[i])) return false
        return true
      })
    }
    case "Objects": {
      if (ast.encodingChecks !== undefined || ast.indexSignatures.length > 1) return undefined
      const props: Array<{ readonly name: string; readonly optional: boolean; readonly validate: Validate }> = []
      for (const ps of ast.propertySignatures) {
        if (typeof ps.name !== "string") return undefined
        const validate = compile(ps.type)
        if (validate === undefined) return undefined
        // Loose: a key whose value may be undefined may also be absent.
        const optional = ps.type.context?.isOptional === true || (loose && validate(undefined))
        props.push({ name: ps.name, optional, validate })
      }
      const index = ast.indexSignatures[0]
      let indexValue: Validate | undefined
      if (index !== undefined) {
        // Only `Record(String, V)`: any string key, each value a V.
        if (index.parameter._tag !== "String" || index.parameter.checks !== undefined || props.length > 0)
          return undefined
        indexValue = compile(index.type)
        if (indexValue === undefined) return undefined
      }
      const known = new Set(props.map((p) => p.name))
      return withChecks(ast, (u) => {
        if (typeof u !== "object" || u === null || Array.isArray(u)) return false
        const o = u as Record<string, unknown>
        if (indexValue !== undefined) {
          for (const key in o) if (hasOwn.call(o, key) && !indexValue(o[key])) return false
          return true
        }
        let present = 0
        for (const p of props) {
          if (hasOwn.call(o, p.name)) {
            present++
            if (!p.validate(o[p.name])) return false
          } else if (!p.optional) return false
        }
        // An excess key: the full decode drops it; this answers the value as is only without one.
        if (!loose && Object.keys(o).length !== present) {
          for (const key of Object.keys(o)) if (!known.has(key)) return false
        }
        return true
      })
    }
    default:
      return undefined
  }
}
