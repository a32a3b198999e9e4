package demo.unions

struct Circle { radius: float }
struct Square { side: float }

/// A tagged union of structs, a primitive and a list.
union Shape {
  /// A round one.
  circle: Circle
  square: Square
  label: string
  points: list<int>
}

struct Drawing {
  shapes: list<Shape>
  main?: Shape
}
