/// Shared value types of the retail domain.
package retail.common

/* Money is a decimal amount in an ISO 4217 currency.
   Decimals travel as strings so no precision is lost. */
struct Money {
  amount: decimal
  currency: string @pattern("^[A-Z]{3}$")
}

/// A page request; every list method takes one.
struct Page {
  offset: int = 0 @min(0)
  limit: int = 50 @min(1) @max(500)
}

/// Where a store is; `zone` keys the prefer-local strategy.
struct Address { street: string, city: string; country: string @minLength(2) @maxLength(2) }

error NotAuthorized @code(PERMISSION_DENIED) {
  /// The permission that was missing.
  permission: string
}
