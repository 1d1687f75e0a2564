"""Knowledge from resolved tickets: similar past cases for new tickets and the closure KB gate.

The rules engine is pure, so the platform searches happen here, before evaluation:
`enrich.enrich` looks up similar resolved cases only when a rule would use them and puts
them on the ticket (`Ticket.similar_cases`); the `similar-cases` and `closure` rules then
read that field like any other.
"""
