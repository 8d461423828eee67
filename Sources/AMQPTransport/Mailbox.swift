import CRabbitMQ
import Glibc
import Synchronization

/// Work that async callers hand to the connection thread. Each case carries the continuation the thread
/// resumes when the work is done.
enum Command: Sendable {
    case publish([OutboundMessage], PublishReceipt, PublishSequence?)
    case declareExchange(ExchangeDeclaration, CheckedContinuation<Void, any Error>)
    case declareQueue(QueueDeclaration, CheckedContinuation<QueueInfo, any Error>)
    case inspectQueue(String, CheckedContinuation<QueueInfo, any Error>)
    case bind(QueueBinding, CheckedContinuation<Void, any Error>)
    case deleteQueue(String, CheckedContinuation<UInt32, any Error>)
    case deleteExchange(String, CheckedContinuation<Void, any Error>)
    case consume(ConsumerRequest, CheckedContinuation<Void, any Error>)
    case cancelConsumer(id: Int, CheckedContinuation<Void, Never>?)
    case settle(DeliveryTag, Settlement)
    case close(CheckedContinuation<Void, Never>?)

    /// Answers a command that will never run (the client is closed, or not connected yet).
    func refuse(with error: AMQPError) {
        switch self {
        case .publish(_, let receipt, _): receipt.settle(.failure(error))
        case .declareExchange(_, let continuation): continuation.resume(throwing: error)
        case .declareQueue(_, let continuation): continuation.resume(throwing: error)
        case .inspectQueue(_, let continuation): continuation.resume(throwing: error)
        case .bind(_, let continuation): continuation.resume(throwing: error)
        case .deleteQueue(_, let continuation): continuation.resume(throwing: error)
        case .deleteExchange(_, let continuation): continuation.resume(throwing: error)
        case .consume(let request, let continuation):
            request.deliveries.abandon()
            continuation.resume(throwing: error)
        case .cancelConsumer(_, let continuation): continuation?.resume()
        case .settle: break
        case .close(let continuation): continuation?.resume()
        }
    }
}

/// How to settle a delivery.
enum Settlement: Sendable {
    case ack(multiple: Bool)
    case nack(multiple: Bool, requeue: Bool)
    case reject(requeue: Bool)
}

/// A consumer as the caller asked for it; the connection thread keeps it for as long as the consumer lives
/// and subscribes it again after every reconnect.
struct ConsumerRequest: Sendable {
    let id: Int
    let queue: String
    let prefetch: UInt16
    let exclusive: Bool
    let arguments: AMQPTable
    let consumerTag: String
    let deliveries: DeliverySink
}

/// Where the connection thread hands a consumer's deliveries: the stream of an ``AMQPConsumer``, or the handlers of a
/// subscription (``AMQPClient/subscribe(queue:prefetch:exclusive:arguments:onEnd:onDelivery:)``).
enum DeliverySink: Sendable {
    case stream(AsyncThrowingStream<InboundDelivery, any Error>.Continuation)
    case handlers(
        delivery: @Sendable (InboundDelivery) -> Void, end: @Sendable (_ consumerTag: String, (any Error)?) -> Void)

    /// Hands over one delivery; `false` when nobody takes deliveries any more (the stream's iteration ended).
    func yield(_ delivery: InboundDelivery) -> Bool {
        switch self {
        case .stream(let continuation):
            if case .terminated = continuation.yield(delivery) { return false }
            return true
        case .handlers(let handle, _):
            handle(delivery)
            return true
        }
    }

    /// The consumer ended: cancelled or its client closed (no error), or the broker cancelled it or it could not be
    /// subscribed again (`error`).
    func finish(throwing error: (any Error)?, consumerTag: String) {
        switch self {
        case .stream(let continuation): continuation.finish(throwing: error)
        case .handlers(_, let end): end(consumerTag, error)
        }
    }

    /// The consumer never started (its `consume` threw): a stream ends; handlers are not called, since the caller
    /// has the error already.
    func abandon() {
        if case .stream(let continuation) = self { continuation.finish() }
    }
}

/// The queue of ``Command``s from async callers to the connection thread, plus an eventfd that wakes the
/// thread's poll() when a command arrives.
final class Mailbox: Sendable {
    /// Readable while commands wait. Owned by this object and closed in `deinit`.
    let wakeDescriptor: Int32
    private let state = Mutex(State())

    private struct State {
        var commands: [Command] = []
        /// Only while a connection thread runs; before ``reopen()`` callers get an immediate refusal.
        var accepting = false
        /// The connection thread, once it runs: what it submits itself (from a handler it calls) needs no wake-up,
        /// since it looks at the queue before it polls.
        var owner: pthread_t?
    }

    init() throws(AMQPError) {
        let descriptor = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
        guard descriptor >= 0 else {
            throw AMQPError(.connectionFailed, "cannot create an eventfd (errno \(errno))")
        }
        wakeDescriptor = descriptor
    }

    deinit { Glibc.close(wakeDescriptor) }

    /// Queues a command for the connection thread; `false` when the thread no longer accepts work (the
    /// caller must then answer the command itself).
    func submit(_ command: Command) -> Bool {
        let caller = pthread_self()
        let (accepted, wake) = state.withLock { state in
            guard state.accepting else { return (false, false) }
            state.commands.append(command)
            return (true, state.owner.map { pthread_equal($0, caller) == 0 } ?? true)
        }
        if wake { eventfd_write(wakeDescriptor, 1) }
        return accepted
    }

    /// Whether commands wait: the connection thread checks before it polls, since its own commands do not wake it.
    var hasCommands: Bool { state.withLock { !$0.commands.isEmpty } }

    /// Marks the calling thread as the connection thread (see ``submit(_:)``).
    func adoptCurrentThread() {
        let thread = pthread_self()
        state.withLock { $0.owner = thread }
    }

    /// Takes every queued command. Clears the wake-up signal first, so a command submitted meanwhile
    /// wakes the next poll().
    func takeAll() -> [Command] {
        var counter: eventfd_t = 0
        _ = eventfd_read(wakeDescriptor, &counter)
        return state.withLock { state in
            defer { state.commands.removeAll(keepingCapacity: true) }
            return state.commands
        }
    }

    /// Stops accepting commands and returns those still queued.
    func shutDown() -> [Command] {
        state.withLock { state in
            state.accepting = false
            state.owner = nil
            defer { state.commands.removeAll() }
            return state.commands
        }
    }

    /// Starts accepting commands, when a connection thread starts (again, after a failed first connection).
    func reopen() {
        state.withLock { $0.accepting = true }
    }
}
