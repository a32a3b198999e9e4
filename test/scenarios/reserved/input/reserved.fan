/// Names that are reserved in TypeScript or JavaScript, and keywords used as names.
package demo.reserved

struct Names {
  class: string
  delete?: bool
  default: int = 0
  function: list<string> = []
  new?: string
  typeof?: int
  service: string
  rpc?: int
  event?: string
  state?: bool
  valueOf?: int
}

enum Keyword { IF, ELSE, RETURN }

service Keywords {
  rpc delete(class: string, in?: int): Names
  rpc state(service: string, event?: string): string
  rpc toString(): string
  push new(var: string)
  event typeof(instanceof: bool)
  state let: Names @full
}
