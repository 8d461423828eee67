import AMQPTransport

extension AMQPClient {
    /// Publishes `message` and waits for the broker: `nil` once confirmed, else what went wrong, in words for an
    /// operator.
    func publishConfirmed(_ message: OutboundMessage) async -> String? {
        let outcome: PublishOutcome
        do {
            outcome = try await publish(message)
        } catch {
            return "publishing failed: \(error)"
        }
        switch outcome {
        case .confirmed:
            return nil
        case .returned(_, let text):
            return "unroutable: nothing bound to '\(message.exchange)' for '\(message.routingKey)' (\(text))"
        case .rejected(let error):
            return "the broker refused it: \(error.message)"
        case .nacked, .connectionLost:
            return "the broker did not confirm it (\(outcome)); try again"
        }
    }
}
