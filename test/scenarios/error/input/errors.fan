package demo.errors

/// Raised when a thing is missing.
error NotThere @code(NOT_FOUND) {
  /// Which thing.
  id: string
  hint?: string
}

/// The default code is FAILED_PRECONDITION.
error Busy {
  retryAfter: duration = 1s
}

error Nothing @code(UNAVAILABLE) {}
