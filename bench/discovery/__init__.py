"""Discovery, failure detection and gossip figures with real stations in network namespaces."""
