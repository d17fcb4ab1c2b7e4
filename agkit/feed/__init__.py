"""Market data into the pipe: `feed sim`, `feed replay`, `feed polymarket`, `feed rtds`,
and Gamma market discovery (`markets`). See docs/feed.md.

Modules are imported lazily by the CLI; import the one you need:
`agkit.feed.sim.Simulator`, `agkit.feed.replay.ReplayFeed`,
`agkit.feed.book.L2Book`, `agkit.feed.polymarket.PolymarketFeed`,
`agkit.feed.rtds.RtdsFeed`, `agkit.feed.gamma.GammaClient`.
"""
