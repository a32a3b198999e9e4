/// A second file of the same package: both files merge into one module.
package billing

struct Receipt { invoice: Invoice, at: timestamp }
