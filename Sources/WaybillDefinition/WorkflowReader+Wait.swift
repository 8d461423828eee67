import Yams

/// Reading `wait` steps: a durable delay, or a wait for a correlated message with a timeout.
extension WorkflowReader {
    /// `wait: { for: 2h }`, or `wait: { message: {exchange, routing_key}, match, key, timeout, on_timeout }`.
    mutating func readWait(_ wait: Entry, into draft: inout StepDraft) -> WaitSpec? {
        guard let mapping = mapping(wait, shape: "like { for: 2h } or { message: ..., match: ..., timeout: 3d }")
        else { return nil }
        let fields = entries(of: mapping, allowed: WorkflowKeys.wait, context: "in wait")
        let messageOnly = ["match", "key", "timeout", "on_timeout"]
        switch (fields["for"], fields["message"]) {
        case (nil, nil):
            if fields.misspelt.isDisjoint(with: ["for", "message"]) {
                log.report(
                    .missingKey, at: location(of: wait.value),
                    "a wait needs for: <duration> (a delay), or message: { exchange: ..., routing_key: ... } with "
                        + "match, key and timeout")
            }
            return nil
        case (let delay?, let message?):
            let later = delay.keyLocation < message.keyLocation ? message : delay
            log.report(
                .conflict, at: later.keyLocation,
                "a wait is for a duration or for a message, not both; a message wait's limit is its timeout")
            return nil
        case (let delay?, nil):
            for key in messageOnly {
                guard let field = fields[key] else { continue }
                log.report(
                    .conflict, at: field.keyLocation,
                    "\(key) belongs to a wait for a message; a wait with for only waits that long, remove it")
            }
            return duration(delay).map(WaitSpec.delay)
        case (nil, let message?):
            return readMessageWait(message, fields: fields, at: location(of: wait.value), into: &draft)
        }
    }

    private mutating func readMessageWait(
        _ message: Entry, fields: Fields, at waitLocation: SourceLocation, into draft: inout StepDraft
    ) -> WaitSpec? {
        var valid = true
        var exchange: String?
        var routingKey: String?
        if let mapping = mapping(message, shape: "like { exchange: inventory, routing_key: stock.available }") {
            let parts = entries(of: mapping, allowed: WorkflowKeys.waitMessage, context: "in message")
            if let entry = parts["exchange"] {
                exchange = text(entry, what: "an exchange name like inventory")
                if let name = exchange, name.hasPrefix("amq.") {
                    log.report(
                        .invalidValue, at: location(of: entry.value),
                        "exchange '\(name)': names starting with amq. belong to RabbitMQ; name an exchange of your own")
                    exchange = nil
                }
            } else {
                missing(
                    "exchange", in: "message", at: location(of: message.value), example: "exchange: <exchange>",
                    given: parts)
            }
            if let entry = parts["routing_key"] {
                routingKey = text(entry, what: "a routing key like stock.available (* and # match words)")
            } else {
                missing(
                    "routing_key", in: "message", at: location(of: message.value),
                    example: "routing_key: <binding key>", given: parts)
            }
        }
        var match: Template?
        if let entry = fields["match"] {
            match = template(entry.value, uses: &draft.uses, part: .action)
        } else {
            missing(
                "match", in: "wait", at: waitLocation, example: "match: \"${input.orderId}\" (the saga's side)",
                given: fields)
            valid = false
        }
        let key = fields["key"].flatMap { readKey($0) }
        if fields["key"] == nil {
            missing(
                "key", in: "wait", at: waitLocation, example: "key: \"${message.orderId}\" (the message's side)",
                given: fields)
        }
        var timeout: Duration?
        if let entry = fields["timeout"] {
            timeout = duration(entry)
        } else {
            missing(
                "timeout", in: "wait", at: waitLocation, example: "timeout: 3d (then on_timeout, or the step fails)",
                given: fields)
        }
        var onTimeout: StepTarget?
        if let entry = fields["on_timeout"] {
            if let targetMapping = mapping(entry, shape: "like { next: <step id> } or { fail: { code: ... } }") {
                let targetFields = entries(of: targetMapping, allowed: WorkflowKeys.target, context: "in on_timeout")
                onTimeout = readTarget(
                    targetFields, at: location(of: entry.value), owner: "on_timeout",
                    failing: "no message came before the wait \(draft.id ?? "step") timed out", into: &draft)
                valid = valid && onTimeout != nil
            } else {
                valid = false
            }
        }
        guard valid, let exchange, let routingKey, let match, let key, let timeout else { return nil }
        let wait = MessageWait(
            exchange: exchange, routingKey: routingKey, match: match, key: key.template, keyText: key.text)
        return WaitSpec(duration: timeout, message: wait, onTimeout: onTimeout)
    }

    /// A message wait's `key`: a text template that reads the message alone, `${message.<field>...}`.
    private mutating func readKey(_ entry: Entry) -> (template: Template, text: String)? {
        guard case .scalar(let scalar) = entry.value, !isEmpty(entry.value) else {
            log.report(
                .wrongKind, at: location(of: entry.value),
                "key must be an expression over the message like \"${message.orderId}\", not \(describe(entry.value))")
            return nil
        }
        var uses: [ExpressionUse] = []
        guard let template = stringTemplate(scalar, uses: &uses, part: .action) else { return nil }
        guard !uses.isEmpty else {
            log.report(
                .invalidValue, at: location(of: entry.value),
                "key is the same for every message; read the message with \"${message.<field>}\"")
            return nil
        }
        for use in uses where use.path.root != .alias(MessageWait.messageName) {
            log.report(
                .badReference, at: use.location,
                "key reads the message, not the saga: use ${message.<field>} here, and put ${\(use.path)} under match")
            return nil
        }
        return (template, scalar.string)
    }
}
