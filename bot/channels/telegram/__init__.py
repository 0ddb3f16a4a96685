"""Telegram, on aiogram or python-telegram-bot, by long polling or the webhook."""

CHANNEL = "telegram"  # its chats' channel, on either library
