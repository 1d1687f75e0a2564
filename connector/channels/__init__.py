"""Team-chat notifications: escalations and breach notices also posted where people work.

A rule's notice (`sla` `notify.breach`/`notify.warning`, an `escalation` level's `comment`)
may name chat channels defined under the top-level `channels:` key. The notice stays a
ticket comment with its one-time marker; the chat message rides on that comment
(`AddComment.chat`) and goes through an outbox in the queue's storage, delivered by its own
queue task, so the reconcile never waits on a chat service and a message is sent once per
marker and channel (see `connector.channels.outbox` for the guarantee and its one window).

Modules: `config` (the `channels:` model and the environment it reads), `route` (what a
rule's notice says about chat), `signing` (DingTalk / Feishu / generic HMAC), `presets`
(each vendor's body and answers), `outbox` (SQLite / Redis storage), `delivery` (the task
and the reconcile's hooks).
"""
