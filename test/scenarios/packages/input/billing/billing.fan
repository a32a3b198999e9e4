package billing

import shop

struct Invoice { total: decimal, cart?: shop.Cart }

error PaymentFailed @code(FAILED_PRECONDITION) { reason: string }

service Billing {
  depends shop.Shop "^0"
  event paid(invoice: Invoice)
  rpc bill(cart: shop.Cart): Invoice throws PaymentFailed
}
