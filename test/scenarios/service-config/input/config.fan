package demo.config

version "3.0.0"

service Backend {
  rpc ping(): string
}

@version("3.1.4")
@transports(http, redis)
@shards(32)
@unique
service Frontend {
  depends Backend "^3.0.0"
  depends soft Backend2 "~1.2"

  config {
    pageSize: int = 50 @min(1)
    /// Never logged.
    apiKey: string @secret
    hosts: list<string> = ["a", "b"]
    refresh: duration = 30s
    mode?: string
  }

  rpc ping(): string
}

@transports(zmq)
service Backend2 {
  rpc ping(): string
}
