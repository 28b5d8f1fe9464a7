-- Argo CD health of agyn.io/AgentWorkload (kstatus conventions, plus the workload phase).
local hs = { status = "Progressing", message = "Waiting for the operator to report status" }
if obj.status == nil then
  return hs
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end
local conditions = {}
if obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    conditions[c.type] = c
  end
end
local function describe(c)
  if c.message ~= nil and c.message ~= "" then
    return (c.reason or c.type) .. ": " .. c.message
  end
  return c.reason or c.type
end
local phase = obj.status.phase
local stalled = conditions["Stalled"]
if (stalled ~= nil and stalled.status == "True") or phase == "Failed" then
  hs.status = "Degraded"
  if stalled ~= nil and stalled.status == "True" then
    hs.message = describe(stalled)
  else
    hs.message = (obj.status.reason or "Failed") .. ": " .. (obj.status.message or "")
  end
  return hs
end
if phase == "Stopped" then
  if obj.spec ~= nil and obj.spec.stopped == true then
    hs.status = "Suspended"
    hs.message = "Stopped (spec.stopped is true)"
  else
    hs.status = "Healthy"
    hs.message = "Completed: the main container exited 0"
  end
  return hs
end
local reconciling = conditions["Reconciling"]
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = describe(reconciling)
  return hs
end
local ready = conditions["Ready"]
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end
if ready ~= nil then
  hs.message = describe(ready)
end
return hs
