import SagaEngine

/// The latest committed state of the sagas a partition touched recently, so the hot loop does not read and decode
/// them again for their next reply. The partition's file stays the source of truth: the cache holds only what was
/// committed, belongs to one claim of the partition (it is dropped with the partition), and a failed commit evicts
/// the sagas it concerned.
///
/// Bounded by two generations of at most `capacity / 2` entries each: a hit moves a saga to the young generation;
/// when the young one is full the old one is dropped. That approximates least-recently-used at O(1) per access.
struct SagaCache {
    private var young: [SagaKey: SagaInstance] = [:]
    private var old: [SagaKey: SagaInstance] = [:]
    private let generation: Int

    /// A cache of about `capacity` sagas (0 keeps nothing).
    init(capacity: Int) {
        generation = max(0, capacity / 2)
    }

    /// Sagas held now.
    var count: Int { young.count + old.count }

    /// The saga's committed state, if held.
    mutating func instance(_ key: SagaKey) -> SagaInstance? {
        if let instance = young[key] { return instance }
        guard let instance = old.removeValue(forKey: key) else { return nil }
        insert(instance)
        return instance
    }

    /// Holds `instance` as its saga's committed state.
    mutating func insert(_ instance: SagaInstance) {
        guard generation > 0 else { return }
        old[instance.key] = nil
        young[instance.key] = instance
        if young.count >= generation {
            old = young
            young = [:]
            young.reserveCapacity(generation)
        }
    }

    /// Forgets the sagas (their commit failed: the file may hold an older state than the one computed).
    mutating func evict<Keys: Sequence>(_ keys: Keys) where Keys.Element == SagaKey {
        for key in keys {
            young[key] = nil
            old[key] = nil
        }
    }
}
