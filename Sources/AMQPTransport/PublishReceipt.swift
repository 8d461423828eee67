import Synchronization

/// The outcome of a batch handed to ``AMQPClient/send(_:in:)``, to be awaited later: the caller goes on with other
/// work while the broker confirms.
///
/// Every receipt is settled exactly once, by the connection thread (confirms, a lost connection) or when the client
/// closes; ``outcomes()`` may be awaited by any number of tasks, before or after that, and ``onSettled(_:)`` handlers
/// run on the thread that settles it.
public final class PublishReceipt: Sendable {
    private typealias Waiter = CheckedContinuation<Result<[PublishOutcome], AMQPError>, Never>
    private typealias Handler = @Sendable (Result<[PublishOutcome], AMQPError>) -> Void

    private struct State {
        var result: Result<[PublishOutcome], AMQPError>?
        var waiters: [Waiter] = []
        var handlers: [Handler] = []
    }

    private let state = Mutex(State())

    init() {}

    /// Whether the broker settled every message (or the batch failed as a whole); ``outcomes()`` then returns at once.
    public var isSettled: Bool { state.withLock { $0.result != nil } }

    /// One ``PublishOutcome`` per message, in batch order, once the broker settled them all.
    ///
    /// - Throws: ``AMQPError/Code/clientClosed`` when the client closed before the batch was sent.
    public func outcomes() async throws(AMQPError) -> [PublishOutcome] {
        let result = await withCheckedContinuation { continuation in
            let ready: Result<[PublishOutcome], AMQPError>? = state.withLock { state in
                if let result = state.result { return result }
                state.waiters.append(continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
        return try result.get()
    }

    /// Calls `handler` with the outcomes once the receipt is settled: on the connection thread, as it reads the last
    /// confirm, without waking a task, and before any task awaiting ``outcomes()`` resumes; at once, on the caller's
    /// thread, when the receipt is settled already (or the client refused the batch). The connection reads nothing
    /// while a handler runs, so a handler must not block or wait for the broker; it may call the client's non-waiting
    /// methods (``AMQPClient/ack(_:multiple:)``, ``AMQPClient/send(_:in:)``).
    public func onSettled(_ handler: @escaping @Sendable (Result<[PublishOutcome], AMQPError>) -> Void) {
        let ready: Result<[PublishOutcome], AMQPError>? = state.withLock { state in
            if let result = state.result { return result }
            state.handlers.append(handler)
            return nil
        }
        if let ready { handler(ready) }
    }

    /// Settles the receipt; later calls are ignored.
    func settle(_ result: Result<[PublishOutcome], AMQPError>) {
        let (waiters, handlers) = state.withLock { state -> ([Waiter], [Handler]) in
            guard state.result == nil else { return ([], []) }
            state.result = result
            defer {
                state.waiters.removeAll()
                state.handlers.removeAll()
            }
            return (state.waiters, state.handlers)
        }
        // Handlers first: a task that awaits the outcomes finds whatever a handler recorded.
        for handler in handlers { handler(result) }
        for waiter in waiters { waiter.resume(returning: result) }
    }
}

/// Batches that must reach the broker in the order they were sent, or not at all: the first batch sent in a
/// sequence binds it to the publishing channel it went out on, and once that channel is gone (a lost connection, a
/// channel the broker closed) every later batch of the sequence is reported ``PublishOutcome/connectionLost``
/// without being sent; a batch sent while there is no channel at all ends the sequence too. So a batch never
/// overtakes an earlier one whose messages were lost with the old channel.
///
/// Start a new sequence once the failures of the old one are dealt with (for a worker: its unconfirmed outbox rows
/// published again, oldest first).
public final class PublishSequence: Sendable {
    /// The publishing channel's incarnation the sequence is bound to; set by the connection thread.
    let channel = Mutex<UInt64?>(nil)

    /// A sequence not bound to any channel yet.
    public init() {}
}
