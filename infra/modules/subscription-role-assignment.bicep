// Assign a role to a principal on the whole subscription (used when the deployer lists no
// resource groups: the VMs and NetworkWatcherRG can then be anywhere in it).
targetScope = 'subscription'

@description('Object (principal) id of the managed identity.')
param principalId string

@description('Full resource id of the role definition to assign.')
param roleDefinitionId string

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, principalId, roleDefinitionId)
  properties: {
    roleDefinitionId: roleDefinitionId
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
