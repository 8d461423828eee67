import Foundation

/// A validated workflow: the saga an integration engineer declared in `Workflows/*.yaml`.
///
/// Build it with ``WorkflowLoader``; every value here has already passed validation, so the engine can rely on
/// step references pointing backwards, durations being positive and `for_each` steps having an alias.
public struct WorkflowDefinition: Sendable, Hashable {
    /// The workflow name, `[a-z0-9-]+`.
    public var name: String
    /// The version; a saga keeps the version it started with until it ends.
    public var version: Int
    /// Where start messages arrive and how their saga id is found.
    public var trigger: Trigger
    /// The steps, in the order they run.
    public var steps: [StepDefinition]
    /// Events published when the saga reaches an end state.
    public var milestones: EndMilestones
    /// The shape a start message must have (`input:`); `nil` takes any JSON object.
    public var input: InputShape?

    /// Creates a definition as is, without validation; files go through ``WorkflowLoader``, which validates.
    public init(
        name: String, version: Int, trigger: Trigger, steps: [StepDefinition],
        milestones: EndMilestones = EndMilestones(), input: InputShape? = nil
    ) {
        self.name = name
        self.version = version
        self.trigger = trigger
        self.steps = steps
        self.milestones = milestones
        self.input = input
    }

    /// The index of the step named `id`, or `nil`.
    public func stepIndex(of id: String) -> Int? {
        steps.firstIndex { $0.id == id }
    }
}

/// The start message binding: a topic exchange, a binding key and the saga id expression.
public struct Trigger: Sendable, Hashable {
    /// The topic exchange start messages are published to (declared durable if missing).
    public var exchange: String
    /// The binding key of the workflow's start queue.
    public var routingKey: String
    /// Evaluates to the saga id over the start message (`${input.orderId}`); must yield a string or number.
    public var sagaId: Template
    /// The saga's priority lane, from the start message; `nil` makes every saga `normal`.
    public var priority: PriorityRule?

    /// Creates a trigger; `sagaId` and `priority` should only use `${input...}` (the loader enforces this).
    public init(exchange: String, routingKey: String, sagaId: Template, priority: PriorityRule? = nil) {
        self.exchange = exchange
        self.routingKey = routingKey
        self.sagaId = sagaId
        self.priority = priority
    }
}

/// Milestone names for the saga's end states. A `nil` name publishes nothing.
public struct EndMilestones: Sendable, Hashable {
    /// Published when every step succeeded.
    public var completed: String?
    /// Published when compensation finished.
    public var compensated: String?
    /// Published when the saga is suspended after its pivot (it needs an operator).
    public var failed: String?
    /// Published when an operator cancels the saga.
    public var cancelled: String?

    /// Creates the end milestones; leave a name `nil` to publish nothing for that end state.
    public init(completed: String? = nil, compensated: String? = nil, failed: String? = nil, cancelled: String? = nil) {
        self.completed = completed
        self.compensated = compensated
        self.failed = failed
        self.cancelled = cancelled
    }
}

/// One step of a workflow, with `defaults` already applied.
///
/// A value type whose fields live in one shared immutable box, so the engine can take a step out of a definition
/// on its hot path for the price of one retain instead of a copy of every field.
public struct StepDefinition: Sendable, Hashable {
    /// What the step does.
    public enum Action: Sendable, Hashable {
        /// Send a command to a participant and wait for its reply.
        case command(CommandTemplate)
        /// Plan shipments across warehouses locally (no message is sent).
        case split(SplitStepSpec)
        /// Pick the path the saga takes from its data, locally (no message is sent).
        case choice(ChoiceSpec)
        /// Wait, durably, for a duration or for a correlated message (a timer in the store, so restarts and
        /// takeovers keep it).
        case wait(WaitSpec)

        /// `command`, `split`, `choice` or `wait`: what views print for the step's kind.
        public var kindName: String {
            switch self {
            case .command: "command"
            case .split: "split"
            case .choice: "choice"
            case .wait: "wait"
            }
        }

        /// Whether the step runs inside the worker and sends no command (no timeout, no retries, nothing to undo).
        public var isLocal: Bool {
            if case .command = self { return false }
            return true
        }
    }

    struct Fields: Sendable, Hashable {
        var id: String
        var action: Action
        var forEach: ForEach?
        var compensate: CommandTemplate?
        var verify: CommandTemplate?
        var timeout: Duration
        var retry: RetryPolicy
        var milestone: String?
        var branchMilestone: String?
        var pivot: Bool
        var reallocate: Reallocation?
        var next: StepTarget?
    }

    final class Box: Sendable {
        let fields: Fields

        init(_ fields: Fields) {
            self.fields = fields
        }
    }

    private var box: Box

    private mutating func update(_ change: (inout Fields) -> Void) {
        var fields = box.fields
        change(&fields)
        box = Box(fields)
    }

    /// The step id, unique in the workflow.
    public var id: String {
        get { box.fields.id }
        set { update { $0.id = newValue } }
    }
    /// The command to send, or the built-in split.
    public var action: Action {
        get { box.fields.action }
        set { update { $0.action = newValue } }
    }
    /// Fan-out: one branch per element of the evaluated array, run in parallel.
    public var forEach: ForEach? {
        get { box.fields.forEach }
        set { update { $0.forEach = newValue } }
    }
    /// The command that undoes this step; `nil` means there is nothing to undo.
    public var compensate: CommandTemplate? {
        get { box.fields.compensate }
        set { update { $0.compensate = newValue } }
    }
    /// The query that asks the participant whether this step's effect is in place (`applied`, `undone` or `absent`),
    /// sent by a reconciliation with the forward command's idempotency key; `nil` means the step is not checked.
    public var verify: CommandTemplate? {
        get { box.fields.verify }
        set { update { $0.verify = newValue } }
    }
    /// How long to wait for a reply before the attempt counts as a retryable failure.
    public var timeout: Duration {
        get { box.fields.timeout }
        set { update { $0.timeout = newValue } }
    }
    /// How failed attempts are retried.
    public var retry: RetryPolicy {
        get { box.fields.retry }
        set { update { $0.retry = newValue } }
    }
    /// The event published when the step succeeds; for a `for_each` step, once when every branch succeeded (the
    /// joined event, whose output is the array of branch outputs).
    public var milestone: String? {
        get { box.fields.milestone }
        set { update { $0.milestone = newValue } }
    }
    /// The event published each time one branch of a `for_each` step succeeds (`branch_milestone`), with that
    /// branch's element and output, before the joined ``milestone``. Only a `for_each` step publishes it: the loader
    /// refuses it on another step, and the engine ignores it on a step built in code without `for_each`.
    public var branchMilestone: String? {
        get { box.fields.branchMilestone }
        set { update { $0.branchMilestone = newValue } }
    }
    /// The point of no return: once it succeeded, failures suspend the saga instead of compensating.
    public var pivot: Bool {
        get { box.fields.pivot }
        set { update { $0.pivot = newValue } }
    }
    /// Re-planning of failed warehouse branches.
    public var reallocate: Reallocation? {
        get { box.fields.reallocate }
        set { update { $0.reallocate = newValue } }
    }
    /// Where the saga goes once this step succeeded (`next:`); `nil` is the step after it. Only ever forward: the
    /// loader refuses a target at or before the step.
    public var next: StepTarget? {
        get { box.fields.next }
        set { update { $0.next = newValue } }
    }

    /// Creates a step with `defaults` already applied; the loader fills `timeout` and `retry` from the file.
    public init(
        id: String, action: Action, forEach: ForEach? = nil, compensate: CommandTemplate? = nil,
        verify: CommandTemplate? = nil, timeout: Duration = .seconds(30), retry: RetryPolicy = RetryPolicy(),
        milestone: String? = nil,
        branchMilestone: String? = nil, pivot: Bool = false, reallocate: Reallocation? = nil, next: StepTarget? = nil
    ) {
        box = Box(
            Fields(
                id: id, action: action, forEach: forEach, compensate: compensate, verify: verify, timeout: timeout,
                retry: retry,
                milestone: milestone, branchMilestone: branchMilestone, pivot: pivot, reallocate: reallocate,
                next: next))
    }

    public static func == (lhs: StepDefinition, rhs: StepDefinition) -> Bool {
        lhs.box === rhs.box || lhs.box.fields == rhs.box.fields
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(box.fields)
    }
}

/// A command a step sends: its routing key (may interpolate `${...}`) and its body template.
public struct CommandTemplate: Sendable, Hashable {
    /// Evaluates to the routing key on the commands exchange; always a string template.
    public var routingKey: Template
    /// Evaluates to the JSON body of the command.
    public var input: Template

    /// Creates a command; `input` defaults to an empty object, like a step without `input:` in YAML.
    public init(routingKey: Template, input: Template = .literal(.object([:]))) {
        self.routingKey = routingKey
        self.input = input
    }
}

/// `for_each` / `as`: the array to fan out over and the name each element is bound to.
public struct ForEach: Sendable, Hashable {
    /// Evaluates to a JSON array.
    public var items: Template
    /// The name the element is visible under inside the step (`${shipment.id}`).
    public var alias: String

    /// Creates a fan-out over `items`, binding each element to `alias`.
    public init(items: Template, alias: String) {
        self.items = items
        self.alias = alias
    }
}

/// The `split` built-in step's inputs.
public struct SplitStepSpec: Sendable, Hashable {
    /// Evaluates to `[{sku, quantity}]`.
    public var lines: Template
    /// Evaluates to `[{warehouse, sku, quantity}]` (an optional `priority` per entry is honoured).
    public var stock: Template
    /// Optional: evaluates to an array of warehouse names, highest priority first.
    public var priority: Template?
    /// The planning strategy.
    public var strategy: SplitStrategyName
    /// What to do when stock is short.
    public var backorder: BackorderPolicy

    /// Creates a split step; `strategy` and `backorder` default like the YAML keys do.
    public init(
        lines: Template, stock: Template, priority: Template? = nil, strategy: SplitStrategyName = .fewestShipments,
        backorder: BackorderPolicy = .reject
    ) {
        self.lines = lines
        self.stock = stock
        self.priority = priority
        self.strategy = strategy
        self.backorder = backorder
    }
}

/// A `wait` step: a durable delay (`for:`), or a wait for a correlated message with a timeout.
public struct WaitSpec: Sendable, Hashable {
    /// A delay's length, or how long a message wait lasts before it times out.
    public var duration: Duration
    /// The message waited for; `nil` for a delay.
    public var message: MessageWait?
    /// Where the saga goes when a message wait times out; `nil` fails the step with `wait_timeout`.
    public var onTimeout: StepTarget?

    /// A durable delay of `duration`.
    public static func delay(_ duration: Duration) -> WaitSpec {
        WaitSpec(duration: duration)
    }

    /// Creates a wait; without `message` it is a delay and `onTimeout` does not apply.
    public init(duration: Duration, message: MessageWait? = nil, onTimeout: StepTarget? = nil) {
        self.duration = duration
        self.message = message
        self.onTimeout = onTimeout
    }
}

/// The message a `wait` step waits for: published by any system to `exchange` with a routing key that matches
/// `routingKey` (an AMQP topic binding key), whose body's `key` equals the saga's `match`.
public struct MessageWait: Sendable, Hashable {
    /// The topic exchange the message is published to.
    public var exchange: String
    /// The binding key (`*` and `#` as in AMQP topic bindings).
    public var routingKey: String
    /// Evaluated over the saga's data when the wait starts: the value the message must carry.
    public var match: Template
    /// Evaluated over the message (`${message...}`): the value compared with `match`.
    public var key: Template
    /// `key` as written, the form the store keeps so a worker can evaluate it for any stored wait.
    public var keyText: String

    /// Creates a message wait; `key` is `keyText` parsed (``Template/parse(string:)``), as the reader reads it.
    public init(exchange: String, routingKey: String, match: Template, key: Template, keyText: String) {
        self.exchange = exchange
        self.routingKey = routingKey
        self.match = match
        self.key = key
        self.keyText = keyText
    }

    /// The name a message is bound to in `key`.
    public static let messageName = "message"

    /// The text a match or key value is compared as: a string as is, a number or boolean as JSON; `nil` for null, an
    /// array or an object, which cannot correlate.
    public static func correlationText(_ value: JSONValue) -> String? {
        switch value {
        case .string(let text): text
        case .number, .bool: JSONText.encode(value)
        case .null, .array, .object: nil
        }
    }

    /// Whether an AMQP topic binding key matches a routing key: words split by `.`, `*` is one word, `#` zero or more.
    ///
    /// Linear in the product of the word counts whatever the pattern (no backtracking over several `#`): the routing
    /// key comes from the wire.
    public static func topic(_ bindingKey: String, matches routingKey: String) -> Bool {
        let pattern = bindingKey.split(separator: ".", omittingEmptySubsequences: false)
        let words = routingKey.split(separator: ".", omittingEmptySubsequences: false)
        // reachable[w]: the pattern's words so far can match exactly the first w words of the key.
        var reachable = [Bool](repeating: false, count: words.count + 1)
        reachable[0] = true
        for part in pattern {
            var next = [Bool](repeating: false, count: words.count + 1)
            if part == "#" {
                var any = false
                for w in 0...words.count {
                    any = any || reachable[w]
                    next[w] = any
                }
            } else {
                for w in 0..<words.count where reachable[w] && (part == "*" || part == words[w]) {
                    next[w + 1] = true
                }
            }
            reachable = next
        }
        return reachable[words.count]
    }
}

/// Where a saga goes after a step or a `choice` rule.
public enum StepTarget: Sendable, Hashable, CustomStringConvertible {
    /// The step with this id, later in the workflow; the steps in between are bypassed.
    case step(String)
    /// Past the last step: the saga completes (`next: end`).
    case end
    /// The saga fails here with this error (non-retryable): it compensates before the pivot and suspends after it.
    case fail(code: String, message: String)

    /// `reserve`, `end` or `fail credit_rejected`.
    public var description: String {
        switch self {
        case .step(let id): id
        case .end: "end"
        case .fail(let code, _): "fail \(code)"
        }
    }
}

/// The `choice` step: rules tried in order, the first whose condition holds picks the target. When none holds, the
/// saga goes to the step's ``StepDefinition/next`` (or the step after it).
public struct ChoiceSpec: Sendable, Hashable {
    /// One rule: a condition and where it sends the saga.
    public struct Rule: Sendable, Hashable {
        /// The condition; `.all([])` always holds (a last rule written without `when`).
        public var when: Condition
        /// Where the saga goes when it holds.
        public var target: StepTarget

        /// Creates a rule.
        public init(when: Condition, target: StepTarget) {
            self.when = when
            self.target = target
        }
    }

    /// The rules, in the order they are tried.
    public var rules: [Rule]

    /// Creates a choice.
    public init(rules: [Rule]) {
        self.rules = rules
    }

    /// Whether some rule always holds, so the saga never falls through to the step's `next`.
    public var isExhaustive: Bool { rules.contains { $0.when == .all([]) } }
}

/// A test over the saga's data: one value and one comparison, or `all`, `any` and `not` of others.
public indirect enum Condition: Sendable, Hashable {
    /// A comparison of the value a template evaluates to.
    public enum Comparison: Sendable, Hashable {
        /// Equal JSON values (numbers by value: 2 equals 2.0).
        case equals(JSONValue)
        /// Not equal to that value.
        case notEquals(JSONValue)
        /// Equal to one of these.
        case oneOf([JSONValue])
        /// Whether the value is empty (null, "", [] or {}) — `empty: true` — or not — `empty: false`.
        case empty(Bool)
        /// Whether the path resolves to something other than null; a path that does not resolve is not present.
        case present(Bool)
        /// Below the bound; like the other numeric comparisons, a value that is not a number fails the step.
        case lessThan(Double)
        /// At most the bound.
        case atMost(Double)
        /// Above the bound.
        case greaterThan(Double)
        /// At least the bound.
        case atLeast(Double)
    }

    /// `{value: ${...}, <comparison>: ...}`.
    case compare(Template, Comparison)
    /// Every condition holds (true when empty).
    case all([Condition])
    /// At least one holds.
    case any([Condition])
    /// The condition does not hold.
    case not(Condition)
}

/// The split strategies the planner knows.
public enum SplitStrategyName: String, Sendable, Hashable, CaseIterable {
    /// Use as few warehouses as possible; ties by priority, then name.
    case fewestShipments = "fewest-shipments"
}

/// Whether a short order fails the split step or ships what exists.
public enum BackorderPolicy: String, Sendable, Hashable, CaseIterable {
    /// Fail the step (non-retryable); compensation follows.
    case reject
    /// Ship what exists and list the rest as backordered.
    case allow
}

/// `reallocate`: which error codes re-plan a failed branch, through which split step, how many times.
public struct Reallocation: Sendable, Hashable {
    /// Non-retryable error codes that trigger re-planning (e.g. `out_of_stock`).
    public var codes: Set<String>
    /// The id of the `split` step to re-run, which must come before this step.
    public var splitStep: String
    /// How many re-plans a saga may make for this step before it compensates as usual.
    public var max: Int

    /// Creates a reallocation; `splitStep` must name a split step that runs earlier.
    public init(codes: Set<String>, splitStep: String, max: Int) {
        self.codes = codes
        self.splitStep = splitStep
        self.max = max
    }
}

/// How failed attempts are retried: exponential backoff, capped, with optional full jitter.
public struct RetryPolicy: Sendable, Hashable {
    /// A limit on attempts.
    public enum MaxAttempts: Sendable, Hashable {
        /// At most this many attempts in total (the first one included).
        case limited(Int)
        /// Retry forever.
        case unlimited
    }

    /// Jitter applied to each delay.
    public enum Jitter: String, Sendable, Hashable {
        /// Exactly the backoff delay.
        case none
        /// A uniformly random delay between zero and the backoff delay ("full jitter").
        case full
    }

    /// How many attempts are allowed in total.
    public var maxAttempts: MaxAttempts
    /// The delay before the second attempt.
    public var initialInterval: Duration
    /// The factor each further delay grows by.
    public var backoff: Double
    /// The cap on any one delay.
    public var maxInterval: Duration
    /// Whether each delay is randomized.
    public var jitter: Jitter

    /// Creates a policy. These parameter defaults are for code; a workflow file without `retry` gets
    /// ``WorkflowLoader/builtInRetry`` instead, which uses full jitter.
    public init(
        maxAttempts: MaxAttempts = .limited(3), initialInterval: Duration = .seconds(1), backoff: Double = 2.0,
        maxInterval: Duration = .seconds(60), jitter: Jitter = .none
    ) {
        self.maxAttempts = maxAttempts
        self.initialInterval = initialInterval
        self.backoff = backoff
        self.maxInterval = maxInterval
        self.jitter = jitter
    }

    /// Whether attempt number `attempt` (1-based) may be followed by another.
    public func allowsAttempt(after attempt: Int) -> Bool {
        switch maxAttempts {
        case .unlimited: true
        case .limited(let limit): attempt < limit
        }
    }

    /// The un-jittered delay after attempt `attempt` (1-based) failed.
    public func backoffDelay(afterAttempt attempt: Int) -> Duration {
        let initial = initialInterval.milliseconds
        let cap = maxInterval.milliseconds
        let exponent = Double(max(0, attempt - 1))
        let raw = Double(initial) * pow(backoff, exponent)
        guard raw.isFinite, raw < Double(cap) else { return .milliseconds(cap) }
        return .milliseconds(Int64(raw))
    }
}

extension Duration {
    /// The duration in whole milliseconds (rounded down).
    public var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
