DROP TABLE push_vapid_keys;
DROP TABLE push_outbox;
DROP TABLE push_subscriptions;
DROP TABLE events;
DROP TABLE event_streams;
