/// A shop that bills through another package, which imports it back.
package shop

import billing as bill

struct Cart {
  lines: list<Line>
  invoice?: bill.Invoice
}
struct Line { sku: string, qty: int }

service Shop {
  rpc checkout(cart: Cart): bill.Invoice throws bill.PaymentFailed
  on bill.Billing.paid
}
