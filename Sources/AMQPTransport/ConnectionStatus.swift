import Synchronization

/// The connection state that async callers may read: written by the connection thread, guarded by a
/// mutex, and the list of tasks waiting for the connection to come (back) up.
final class ConnectionStatus: Sendable {
    enum Phase: Sendable, Equatable {
        case idle
        case connected
        case reconnecting
        case closed
    }

    private struct State {
        var phase = Phase.idle
        var connections: UInt64 = 0
        var blocked = false
        var endpoint: AMQPConfiguration.Endpoint?
        var nextWaiterID = 0
        var waiters: [Int: CheckedContinuation<Void, any Error>] = [:]
    }

    private let state = Mutex(State())

    var phase: Phase { state.withLock { $0.phase } }
    var connections: UInt64 { state.withLock { $0.connections } }
    var isBlocked: Bool { state.withLock { $0.blocked } }

    /// The node of the open connection; `nil` while not connected.
    var connectedEndpoint: AMQPConfiguration.Endpoint? {
        state.withLock { $0.phase == .connected ? $0.endpoint : nil }
    }

    func setBlocked(_ blocked: Bool) { state.withLock { $0.blocked = blocked } }

    /// Records the node the next `connected` phase is at.
    func setEndpoint(_ endpoint: AMQPConfiguration.Endpoint) { state.withLock { $0.endpoint = endpoint } }

    /// Records a phase change and wakes the waiters it concerns.
    func enter(_ phase: Phase) {
        let (waiters, error): ([CheckedContinuation<Void, any Error>], AMQPError?) = state.withLock { state in
            state.phase = phase
            switch phase {
            case .connected:
                state.connections += 1
                state.blocked = false
            case .reconnecting, .idle:
                return ([], nil)
            case .closed:
                break
            }
            defer { state.waiters.removeAll() }
            let error = phase == .closed ? AMQPError(.clientClosed, "the AMQP client was closed") : nil
            return (Array(state.waiters.values), error)
        }
        for waiter in waiters {
            if let error { waiter.resume(throwing: error) } else { waiter.resume() }
        }
    }

    /// Returns once the phase is `connected`; throws when the client is closed or the task is cancelled.
    func waitUntilConnected() async throws {
        let id = state.withLock { state in
            defer { state.nextWaiterID += 1 }
            return state.nextWaiterID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let immediate: Result<Void, any Error>? = state.withLock { state in
                    if Task.isCancelled { return .failure(CancellationError()) }
                    switch state.phase {
                    case .connected: return .success(())
                    case .closed: return .failure(AMQPError(.clientClosed, "the AMQP client was closed"))
                    case .idle, .reconnecting:
                        state.waiters[id] = continuation
                        return nil
                    }
                }
                if let immediate { continuation.resume(with: immediate) }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume(throwing: CancellationError())
        }
    }
}
