package demo.enums

/// Explicit values.
enum Color { RED = 1, WHITE = 2, ROSE = 3 }

/// Implicit values 0, 1, 2 and documented members.
enum Size {
  /// The small one.
  SMALL
  MEDIUM
  LARGE
}

struct Palette {
  main: Color = RED
  sizes: map<Size, int>
  all: list<Color> = [RED, ROSE]
}
