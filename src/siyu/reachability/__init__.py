"""Reachability (可触达) per member and channel, consent records, and the operable user assets."""
