--[[
  The waiting room's seeded shuffle: where a buyer who joined before the opening stands, the first 52
  bits of sha1(seed ':' buyer) as a fraction in [0,1). joinQueue places a buyer by it and pollQueue
  puts a buyer back by it after Redis lost the room: one definition, so both give the same place.
]]
local function shufflePlace(seed, buyer)
  return tonumber(string.sub(redis.sha1hex(seed .. ':' .. buyer), 1, 13), 16) / 4503599627370496
end
