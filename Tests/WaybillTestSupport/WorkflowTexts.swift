/// Small workflow files the tests of several targets share.
public enum WorkflowTexts {
    /// accept, a 2-hour `wait` step (`cooling-off`), ship.
    public static let paced = """
        name: paced
        version: 1
        trigger: { exchange: orders, routing_key: order.placed, saga_id: "${input.id}" }
        steps:
          - id: accept
            command: erp.accept
            compensate: { command: erp.cancel }
          - id: cooling-off
            wait: { for: 2h }
            milestone: order.cooled
          - id: ship
            command: tms.create
        milestones: { completed: done, compensated: undone, cancelled: stopped }
        """

    /// Accept, then wait up to a day for a payment confirmation for the order on exchange `payments` (the step fails
    /// when none comes), then ship, unless the amount confirmed is zero; a confirmation of a declined payment
    /// arrives with `declined: true` and is sent to the end.
    public static let awaitingPayment = """
        name: awaiting-payment
        version: 1
        trigger: { exchange: orders, routing_key: order.placed, saga_id: "${input.id}" }
        steps:
          - id: accept
            command: erp.accept
            compensate: { command: erp.cancel }
          - id: payment
            wait:
              message: { exchange: payments, routing_key: payment.*.confirmed }
              match: "${input.id}"
              key: "${message.orderId}"
              timeout: 1d
            milestone: order.paid
          - id: ship
            command: tms.create
            input: { amount: "${steps.payment.output.amount}" }
        milestones: { completed: done, compensated: undone, cancelled: stopped }
        """

    /// `awaitingPayment` whose timeout sends the saga on to `remind` instead of failing it.
    public static let awaitingPaymentOrRemind = """
        name: awaiting-payment
        version: 2
        trigger: { exchange: orders, routing_key: order.placed, saga_id: "${input.id}" }
        steps:
          - id: accept
            command: erp.accept
            compensate: { command: erp.cancel }
          - id: payment
            wait:
              message: { exchange: payments, routing_key: payment.*.confirmed }
              match: "${input.id}"
              key: "${message.orderId}"
              timeout: 1d
              on_timeout: { next: remind }
            milestone: order.paid
          - id: ship
            command: tms.create
            next: end
          - id: remind
            command: crm.remind
        """
}
