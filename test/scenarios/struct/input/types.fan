/// Every built-in type as a struct field, with constraints, defaults and docs.
package demo.types

/// A struct with one field per built-in type.
struct Everything {
  flag: bool = true
  count: int = 3 @min(0) @max(10)
  big: int64 = 9007199254740993 @min(-5)
  ratio: float = 0.5 @min(0.0) @max(1.0)
  price: decimal = "1.50" @min(0)
  /// A name; at most 20 characters.
  name: string = "x" @minLength(1) @maxLength(20) @pattern("^[a-z]+$")
  blob: bytes @maxLength(16)
  at: timestamp
  wait: duration = 1500ms @max(1h)
  id: uuid
  anything: json
  names: list<string> = ["a", "b"] @maxItems(4)
  grid: list<list<int>>
  byName: map<string, float> @maxItems(8)
  byNumber?: map<int, list<string>>
  maybe?: string
  nested?: Inner
  inners: list<Inner> = []
}

/// A struct referenced before it is declared and referring to itself.
struct Inner {
  label: string
  children?: list<Inner>
}

struct Empty {}
