"""``python -m bot.sandbox.botapi --port N --token T``: see `standalone`."""

from bot.sandbox.botapi.standalone import main

main()
