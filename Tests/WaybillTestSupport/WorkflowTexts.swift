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
}
