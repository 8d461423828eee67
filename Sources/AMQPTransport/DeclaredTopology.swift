/// One declaration the client made and will make again after a reconnect.
enum TopologyStep: Equatable {
    case exchange(ExchangeDeclaration)
    case queue(QueueDeclaration)
    case binding(QueueBinding)

    /// Whether both steps declare the same broker object (the same exchange or queue name, the same binding),
    /// possibly with different settings.
    func declares(sameObjectAs other: TopologyStep) -> Bool {
        switch (self, other) {
        case (.exchange(let a), .exchange(let b)): a.name == b.name
        case (.queue(let a), .queue(let b)): a.name == b.name
        case (.binding(let a), .binding(let b)): a == b
        default: false
        }
    }

    /// Whether the step declares the queue or binds it.
    func involvesQueue(_ name: String) -> Bool {
        switch self {
        case .queue(let declaration): declaration.name == name
        case .binding(let binding): binding.queue == name
        case .exchange: false
        }
    }

    /// Whether the step declares the exchange or binds a queue to it.
    func involvesExchange(_ name: String) -> Bool {
        switch self {
        case .exchange(let declaration): declaration.name == name
        case .binding(let binding): binding.exchange == name
        case .queue: false
        }
    }
}

/// The exchanges, queues and bindings the client declared, to declare again on every new connection.
///
/// Kept in the order the objects were first declared, so a binding comes after its queue and exchange. Declaring
/// an object again replaces its step where it stands rather than moving it to the end.
struct DeclaredTopology {
    /// The declarations to replay, in order.
    private(set) var steps: [TopologyStep] = []

    /// Records a declaration the broker accepted.
    mutating func remember(_ step: TopologyStep) {
        if let index = steps.firstIndex(where: { $0.declares(sameObjectAs: step) }) {
            steps[index] = step
        } else {
            steps.append(step)
        }
    }

    /// Forgets a deleted queue and its bindings.
    mutating func forgetQueue(_ name: String) {
        steps.removeAll { $0.involvesQueue(name) }
    }

    /// Forgets a deleted exchange and the bindings to it.
    mutating func forgetExchange(_ name: String) {
        steps.removeAll { $0.involvesExchange(name) }
    }
}
