from ninja import NinjaAPI

api = NinjaAPI(title="engage", version="1")
