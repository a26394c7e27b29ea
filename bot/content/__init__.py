"""The content library: psychoeducation snippets and skill exercises authored as files.

Modules: `model` (the typed items), `library` (loading and look-up), `parse` (one file),
`validate` (checks across files), `render` (Markdown subset to Telegram HTML), `readability`,
`callbacks` (button data), `store` (hot reload), `check` and `preview` (command-line tools).
The file format is described in content/FORMAT.md. (`i18n`, the bot's own UI strings from
content/<locale>/ui.toml, is separate from this library.)
"""
