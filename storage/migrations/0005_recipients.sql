-- Each recipient has destinations of its own: "<recipient>:chat", "<recipient>:email".
-- Everything queued before went to the support team's chat or email.
UPDATE deliveries SET destination = 'support:chat' WHERE destination = 'staff_chat';
UPDATE deliveries SET destination = 'support:email' WHERE destination = 'email';
