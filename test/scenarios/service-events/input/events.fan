package demo.events

struct Tick { n: int }

service Clock {
  /// Every second.
  event ticked(tick: Tick, at: timestamp)
  @broadcast
  event reset()

  /// The current tick, replaced on every update.
  state current: Tick @full
  state history: map<string, Tick> @delta
}

service Listener {
  /// React to ticks.
  on Clock.ticked
  on Clock.reset
}
