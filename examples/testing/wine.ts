import type { Wine } from "../../generated/retail/wines.js";

/** The wine the examples sell. */
export const wine: Wine = {
  id: "6f1c4d2e-8b0a-4c3e-9f5d-1a2b3c4d5e6f",
  name: "Chablis",
  color: "WHITE",
  unit: "BOTTLE",
  price: { amount: "18.50", currency: "EUR" },
  tags: [],
  stock: { s1: 6 },
  createdAt: new Date("2026-01-01T00:00:00Z"),
  abv: 12.5,
};
